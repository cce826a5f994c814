/**
 * Recovery times through what users run: `gantry run` maps many short tasks on `gantry broker` and
 * `gantry agent` processes while a fault is injected once a quarter of them started — nats-server
 * restarted (SIGTERM, SIGKILL; 2 s down, same store), the leading broker killed with SIGKILL while a
 * standby waits, and the server leading the broker's state bucket killed in a 3-server NATS cluster
 * at R3. Prints, per fault, the longest time without a task start, how long until the first start,
 * and the tasks lost and run twice (each task counts its own starts). First, the floor under the R3
 * fault: how long a bare R3 bucket refuses writes after its leader's server is killed (the followers'
 * election; `--elections 0` skips it). Asserts nothing.
 *
 *   npm run bench:reliability [-- --tasks 600 --ms 300 --only r3-leader-sigkill --timeline --elections 5]
 */
import { parseArgs } from 'node:util';
import { type FaultKind, measureElection, type Recovery, runFault } from '../../test/fault-scenarios.ts';

const KINDS: readonly FaultKind[] = ['nats-sigterm', 'nats-sigkill', 'broker-sigkill', 'r3-leader-sigkill'];

const { values } = parseArgs({
  options: {
    tasks: { type: 'string', default: '600' },
    ms: { type: 'string', default: '300' },
    only: { type: 'string' },
    timeline: { type: 'boolean', default: false },
    elections: { type: 'string', default: '5' },
  },
});
const n = Number(values.tasks);
const taskMs = Number(values.ms);
const elections = Number(values.elections);
if (!Number.isInteger(n) || n < 8 || !Number.isInteger(taskMs) || taskMs < 1) {
  console.error('--tasks must be an integer of at least 8 and --ms a positive integer');
  process.exit(2);
}
if (!Number.isInteger(elections) || elections < 0) {
  console.error('--elections must be a whole number (0 skips the election measurement)');
  process.exit(2);
}
const kinds = values.only ? values.only.split(',') : KINDS;
for (const k of kinds)
  if (!KINDS.includes(k as FaultKind)) {
    console.error(`--only ${k}: not a fault; one of ${KINDS.join(', ')}`);
    process.exit(2);
  }

if (elections > 0) {
  const ms: number[] = [];
  for (let i = 0; i < elections; i++) {
    const e = await measureElection();
    ms.push(e.ms);
    console.log(
      `R3 bucket, leader ${e.leader} SIGKILL: writes refused for ${e.ms} ms, then led by ${e.newLeader}`,
    );
  }
  ms.sort((a, b) => a - b);
  console.log(`election after a leader's SIGKILL: ${ms.map((m) => `${m} ms`).join(', ')}\n`);
}

console.log(`gantry run of ${n} tasks of ${taskMs} ms each; the fault comes once ${n / 4} started\n`);
const rows: Recovery[] = [];
for (const kind of kinds as FaultKind[]) {
  const started = Date.now();
  process.stdout.write(`${kind} … `);
  const r = await runFault(kind, { n, taskMs });
  rows.push(r);
  const ok = r.code === 0 && r.answer === n * (n - 1);
  console.log(
    `${r.fault}: longest stall ${r.longestStallMs} ms, first start after ${r.firstStartMs ?? 'never'} ms; ` +
      `lost ${r.lost.length}, run twice ${r.twice.length}; run ${ok ? 'finished right' : `FAILED (exit ${r.code})`} ` +
      `(${Math.round((Date.now() - started) / 1000)} s)`,
  );
  if (values.timeline) for (const line of r.timeline) console.log(`    ${line}`);
}

console.log('\nfault                 longest stall  first start  lost  run twice');
for (const r of rows)
  console.log(
    `${r.kind.padEnd(20)}  ${`${r.longestStallMs} ms`.padStart(13)}  ${`${r.firstStartMs ?? '-'} ms`.padStart(11)}  ` +
      `${String(r.lost.length).padStart(4)}  ${String(r.twice.length).padStart(9)}`,
  );
