/**
 * One run mapping a no-op task over 250K items on warm workers, end to end: wall time, tasks/s, and
 * peak memory. Embedded: broker, agents and runtime share one process. Over NATS: the broker and the
 * agent run as their own `gantry` processes against a real nats-server, the runtime here. Prints the
 * figures; asserts nothing.
 *
 *   npm run bench:fanout [-- --items 250000 --mode embedded|nats|both]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startEmbedded } from '../../bin/embedded.ts';
import { loadPlatform } from '../../policies/index.ts';
import { connectNats, openJetStreamStore } from '../../protocol/nats-index.ts';
import { startNatsServer } from '../../test/nats/server.ts';
import { Runtime, runWorkflow } from '../index.ts';
import { openJetStreamArtifacts } from '../nats-artifacts.ts';
import { progressLines } from '../progress.ts';
import { fanout } from './tasks.ts';

const { values } = parseArgs({
  options: { items: { type: 'string', default: '250000' }, mode: { type: 'string', default: 'both' } },
});
const items = Number(values.items);
const modes = values.mode === 'both' ? ['embedded', 'nats'] : [values.mode!];
const MODULE = fileURLToPath(new URL('./tasks.ts', import.meta.url));
const PLATFORM = 'test/fixtures/runtime-platform';
const mib = (kb: number) => `${Math.round(kb / 1024)} MiB`;

/** Peak resident memory of a process, KiB (Linux: VmHWM). */
function peakRssKb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

const progress = (label: string, total: number) =>
  progressLines(label, total, (l) => console.log(`  ${l}`), 5000);

function report(mode: string, r: Awaited<ReturnType<typeof runWorkflow>>, extra: string): void {
  if (!r.ok) throw r.error;
  const secs = (r.endedAt - r.startedAt) / 1000;
  console.log(
    `${mode}: ${items} items in ${secs.toFixed(1)} s = ${Math.round(items / secs)} tasks/s; ${r.output} results in order; ${r.executions} lineage records; ${extra}`,
  );
}

for (const mode of modes) {
  if (mode === 'embedded') {
    const { platform } = loadPlatform([PLATFORM]);
    const e = await startEmbedded({
      platform,
      stateDir: mkdtempSync(join(tmpdir(), 'gantry-fanout-')),
      speedup: 1000,
      heartbeatMs: 500,
    });
    const runtime = new Runtime({ transport: e.transport, artifacts: e.artifacts, progress });
    const r = await runWorkflow(
      fanout,
      { items },
      { runtime, team: 'ml', module: MODULE, store: e.runtimeStore },
    );
    report(
      'embedded',
      r,
      `peak RSS of the one process (broker + agents + runtime) ${mib(process.resourceUsage().maxRSS)}`,
    );
    runtime.stopWorkers();
    await e.stop();
  } else if (mode === 'nats') {
    const server = await startNatsServer();
    const state = mkdtempSync(join(tmpdir(), 'gantry-fanout-nats-'));
    const gantry = (...args: string[]): ChildProcess =>
      spawn(process.execPath, ['bin/gantry.js', ...args], {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: { ...process.env, GANTRY_LOG: 'warn' },
      });
    const broker = gantry(
      'broker',
      '--nats',
      server.url,
      '-f',
      PLATFORM,
      '--state',
      state,
      '--heartbeat',
      '500',
    );
    const agent = gantry(
      'agent',
      '--nats',
      server.url,
      '-f',
      PLATFORM,
      '--cluster',
      'sim-aws',
      '--speedup',
      '1000',
    );
    const nats = await connectNats({ servers: server.url, name: 'bench-runtime' });
    const store = await openJetStreamStore(nats.connection, {
      bucket: 'gantry-runtime',
      stream: 'gantry-lineage',
    });
    const runtime = new Runtime({
      transport: nats,
      artifacts: await openJetStreamArtifacts(nats.connection),
      progress,
    });
    const r = await runWorkflow(fanout, { items }, { runtime, team: 'ml', module: MODULE, store });
    report(
      'nats',
      r,
      `peak RSS: broker ${mib(peakRssKb(broker.pid!))}, agent with its workers ${mib(peakRssKb(agent.pid!))}, runtime ${mib(process.resourceUsage().maxRSS)}`,
    );
    runtime.stopWorkers();
    broker.kill('SIGTERM');
    agent.kill('SIGTERM');
    await store.close();
    await nats.close();
    await server.stop();
  } else throw new Error(`--mode must be embedded, nats or both, not '${mode}'`);
}
console.log('target: < 120 s and < 1 GiB on this 2-core machine');
process.exit(0);
