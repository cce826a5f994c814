/**
 * `npm run bench:spend [-- --hours <n>]`: the spend audit (agents/bench/spend.ts), printed as tables.
 */
import { runSpendAudit } from './spend.ts';

const at = process.argv.indexOf('--hours');
const hours = at > 0 ? Number(process.argv[at + 1]) : 168;
process.stderr.write(
  `spend audit: ${hours} simulated hours on the example platform (EC2 and GCE test servers)\n`,
);
const audit = await runSpendAudit({ hours });
console.log(`tasks: ${audit.tasks.sent} sent, ${audit.tasks.succeeded} succeeded`);
for (const t of audit.tasks.notSucceeded)
  console.log(
    `  not succeeded: ${t.id} (${t.states.join(' → ') || 'no state'})${t.reason ? `: ${t.reason}` : ''}`,
  );
console.log('');
console.log('CLOUD  CLUSTER   NODES PLANNED  INSTANCES LAUNCHED  EXTRA  SPOT RECLAIMS  GIVEN UP (why)');
for (const c of audit.clouds) {
  const why = Object.entries(c.givenUp).map(([k, n]) => `${n} ${k}`);
  console.log(
    `${c.cloud.padEnd(6)} ${c.cluster.padEnd(9)} ${String(c.planned).padStart(13)}  ${String(c.launched).padStart(18)}  ${String(c.extra).padStart(5)}  ${String(c.reclaimed).padStart(13)}  ${why.join(', ') || '0'}`,
  );
}
const r = audit.removedCluster;
console.log(
  `\nremoved cluster: ${r.cluster} drained and removed with --force at hour ${r.atHour}: ${r.terminated} node(s) terminated, ${r.leftRunning} instance(s) still running after${r.error ? ` (${r.error})` : ''}`,
);
console.log('\nTEAM         SPENT ($)  PER MONTH ($)  PER HOUR ($/h)');
for (const b of audit.budgets)
  console.log(
    `${b.team.padEnd(12)} ${b.spent.toFixed(2).padStart(9)}  ${String(b.perMonth ?? '-').padStart(13)}  ${String(b.perHour ?? '-').padStart(14)}`,
  );
const k = audit.killedDriver;
console.log(
  `\nkilled driver: ${k.leases} leases running when it went silent; grace ${k.graceSeconds} s simulated (one broker tick ${k.tickSeconds} s)`,
);
console.log(`orphaned lease-seconds after the grace period: ${k.orphanedLeaseSeconds}`);
