/**
 * Warm invocation round trip (runtime → warm worker → result), embedded and over a real nats-server,
 * and the cold start of a local worker process. Prints the figures; asserts nothing.
 *
 *   npm run bench:latency [-- --calls 3000]
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Runtime, runWorkflow } from '../index.ts';
import { startSystem } from '../../test/system.ts';
import { latency } from './tasks.ts';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '3000' } } });
const calls = Number(values.calls);
const MODULE = fileURLToPath(new URL('./tasks.ts', import.meta.url));

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const ms = (v: number) => `${v.toFixed(2)} ms`;

for (const mode of ['embedded', 'nats'] as const) {
  const system = await startSystem(mode, { platformDir: 'test/fixtures/runtime-platform', speedup: 1000 });
  const runtime = new Runtime({ transport: system.transport, artifacts: system.artifacts, progress: false });
  const probes = [
    { team: 'ml', where: 'in-process worker (simulated cluster)' },
    { team: 'local', where: 'worker process (local cluster)' },
    // The warm worker above is stopped first: this one starts from the booted spare process.
    { team: 'local', where: 'worker process, from a booted spare' },
  ];
  for (const { team, where } of probes) {
    runtime.stopWorkers();
    await new Promise((r) => setTimeout(r, 300));
    const r = await runWorkflow(latency, { calls: calls + 1 }, { runtime, team, module: MODULE });
    if (!r.ok) throw r.error;
    const [first, ...rest] = r.output as number[];
    const sorted = rest.sort((a, b) => a - b);
    console.log(
      `${mode.padEnd(8)} ${where.padEnd(38)} cold first call ${ms(first!).padStart(10)}   warm p50 ${ms(pct(sorted, 50))}  p99 ${ms(pct(sorted, 99))}  max ${ms(sorted[sorted.length - 1]!)}  (${rest.length} calls)`,
    );
  }
  runtime.stopWorkers();
  await system.stop();
}
console.log(
  'targets: warm p50 < 5 ms, p99 < 50 ms; cold start of a local worker < 1 s. A cold first call includes the broker placing the worker and the worker starting.',
);
process.exit(0);
