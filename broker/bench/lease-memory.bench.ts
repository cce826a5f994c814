/**
 * `npm run bench:lease-memory [leases …]`: the broker's heap per active lease. An embedded broker (local
 * state directory, in-process transport) places the leases; in place of agents, this process sends
 * heartbeats, acknowledges each launch and reports each lease running, so that every lease ends up
 * active and counted as on a busy fleet. Prints the heap after garbage collection per lease, beside
 * the whole process's RSS; asserts nothing. The heap includes the local store's copy of each record
 * (a broker on JetStream keeps none).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPlatform } from '../../policies/index.ts';
import {
  createMemoryTransport,
  decodeJson,
  encodeJson,
  type LeaseMsg,
  openLocalStore,
  subjects,
} from '../../protocol/index.ts';
import { RequestBatcher } from '../../runtime/index.ts';
import { defaultBackends } from '../../solver/index.ts';
import { createBroker } from '../index.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc (npm run bench:lease-memory does)');
const sizes = process.argv
  .slice(2)
  .filter((a) => /^\d+$/.test(a))
  .map(Number);

/** Heap in use after full collections. */
function heap(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

async function measure(n: number): Promise<string> {
  const { platform } = loadPlatform(['test/fixtures/bench']);
  const transport = createMemoryTransport();
  const store = await openLocalStore(mkdtempSync(join(tmpdir(), 'gantry-lease-memory-')));
  const broker = createBroker({
    transport,
    store,
    platform,
    backends: await defaultBackends(),
    heartbeatMs: 1000,
  });
  await broker.start();
  let seq = 0;
  const beat = () => {
    for (const c of platform.clusters)
      transport.publish(
        subjects.heartbeat(c.name),
        encodeJson({
          cluster: c.name,
          agentId: `bench-${c.name}`,
          seq: seq++,
          nodes: [],
          activeCount: 0,
          finished: [],
        }),
      );
  };
  beat();
  const beating = setInterval(beat, 300);
  for (const c of platform.clusters)
    transport.subscribe(subjects.launch(c.name), (m) => {
      const { leases } = decodeJson(m.data) as { leases: LeaseMsg[] };
      transport.respond(m, encodeJson({ ok: true }));
      const at = Date.now();
      const events = leases.map((l) => ({
        type: 'lease',
        cluster: c.name,
        leaseId: l.leaseId,
        state: 'running',
        at,
        node: l.node,
        startedAt: at,
      }));
      transport.publish(subjects.events(c.name), encodeJson({ events }));
    });
  await new Promise((r) => setTimeout(r, 500));
  const before = heap();
  const batcher = new RequestBatcher(transport, { replyTimeoutMs: 300_000 });
  let next = 0;
  const progress = setInterval(() => process.stderr.write(`  ${next} of ${n} asked\n`), 10_000);
  await Promise.all(
    Array.from({ length: 5000 }, async () => {
      while (next < n) {
        const i = next++;
        await batcher.ask(
          { requestId: `m-${i}`, team: 'bench', work: { kind: 'sim', durationMs: 3_600_000 } },
          'bench',
        );
      }
    }),
  );
  batcher.close();
  clearInterval(progress);
  // The last launches' running reports.
  await new Promise((r) => setTimeout(r, 1500));
  const after = heap();
  let running = 0;
  for (const l of broker.state.leases.values()) if (l.state === 'running') running++;
  const rss = process.memoryUsage().rss;
  clearInterval(beating);
  await broker.stop();
  await store.close();
  return `| ${n.toLocaleString('en-US')} | ${running.toLocaleString('en-US')} | ${Math.round((after - before) / n).toLocaleString('en-US')} | ${Math.round(after / 2 ** 20)} | ${Math.round(rss / 2 ** 20)} |`;
}

console.log('| leases | running | heap bytes per lease | heap MiB | process RSS MiB |');
console.log('| --- | --- | --- | --- | --- |');
for (const n of sizes.length ? sizes : [20_000, 100_000]) console.log(await measure(n));
process.exit(0);
