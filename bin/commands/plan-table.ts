/** The people-facing rendering of a plan: groups, where they went and why, new nodes, totals. */
import type { Plan } from '../../solver/index.ts';
import { table } from '../table.ts';

const money = (n: number) => (Number.isFinite(n) ? `$${n.toFixed(n < 10 ? 4 : 2)}` : '—');

/**
 * Writes the plan as aligned text; `wide` adds each group's next-best pool and lists every unplaced
 * task. Nodes of reserved (owned) pools are never listed as something to buy.
 */
export function printPlanTable(
  p: Plan,
  write: (s: string) => void,
  opts: { wide?: boolean; failOnUnplaced?: boolean } = {},
): void {
  const tasks = p.placements.length + p.unplaced.length;
  write(
    `Plan: ${tasks} tasks in ${p.solver.groups} groups over ${p.solver.pools} pools — ${p.solver.backend} ${p.solver.status}, ` +
      `${p.solver.variables} variables, ${Math.round(p.solver.ms)} ms (LP ${Math.round(p.solver.lpMs)} ms)\n`,
  );
  if (p.solver.fallback) write(`Note: ${p.solver.fallback}\n`);
  write('\n');
  const rows = p.groups.map((g) => [
    g.group,
    g.team,
    String(g.tasks),
    g.shape,
    g.chosen.map((c) => `${c.poolId}${c.onRunningNodes ? ' (running nodes)' : ''} ×${c.tasks}`).join(', ') ||
      '—',
    g.chosen.length ? money(Math.max(...g.chosen.map((c) => c.costPerTask))) : '—',
    g.unplaced
      ? `${g.unplaced} unplaced: [${g.why.kind}] ${g.why.detail}`
      : g.why.kind === 'cost'
        ? g.why.detail
        : `[${g.why.kind}] ${g.why.detail}`,
    ...(opts.wide
      ? [
          g.nextBest
            ? `${g.nextBest.poolId} ${money(g.nextBest.costPerTask)}: ${g.nextBest.whyNot.detail}`
            : '—',
        ]
      : []),
  ]);
  write(
    table(
      ['GROUP', 'TEAM', 'TASKS', 'SHAPE', 'WHERE', '$/TASK', 'WHY', ...(opts.wide ? ['NEXT BEST'] : [])],
      rows,
    ),
  );
  const toBuy = p.newNodes.filter((n) => n.capacityType !== 'reserved');
  const owned = p.newNodes.filter((n) => n.capacityType === 'reserved');
  if (toBuy.length > 0) {
    write('\nNew nodes to buy:\n');
    write(
      table(
        ['POOL', 'INSTANCE TYPE', 'CAPACITY', 'COUNT', '$/HOUR EACH'],
        toBuy.map((n) => [n.poolId, n.instanceType, n.capacityType, String(n.count), money(n.pricePerHour)]),
      ),
    );
  }
  if (owned.length > 0)
    write(
      `\nOwned nodes the plan also counts on (reserved, not running or in --nodes; nothing to buy): ` +
        `${owned.map((n) => `${n.poolId} ×${n.count}`).join(', ')}\n`,
    );
  if (p.unplaced.length > 0) {
    write(
      `\nUnplaced: ${p.unplaced.length} task(s)${opts.failOnUnplaced ? ' (exit code 1)' : ' (exit code 0; --fail-on-unplaced makes it 1)'}\n`,
    );
    const shown = opts.wide ? p.unplaced : p.unplaced.slice(0, 10);
    for (const u of shown) write(`  ${u.taskId}: ${u.reason.kind}: ${u.reason.detail}\n`);
    if (p.unplaced.length > shown.length)
      write(`  … and ${p.unplaced.length - shown.length} more (-o wide lists them all)\n`);
  }
  const ratio = p.bound > 1e-9 ? ` (plan/bound ${(p.cost.objective / p.bound).toFixed(3)})` : '';
  const node =
    p.bounds.node !== undefined && Number.isFinite(p.bounds.node)
      ? `Node-level bound: ${money(p.bounds.node)}${p.bounds.node > 1e-9 ? ` (plan/bound ${(p.cost.objective / p.bounds.node).toFixed(3)})` : ''}\n`
      : '';
  const vs = (b: { expected: number }) =>
    p.cost.expected > 1e-9 ? ` (${(b.expected / p.cost.expected).toFixed(2)} × the plan)` : '';
  const greedy = p.diagnostics?.greedy;
  write(
    `\nCost: ${money(p.cost.perHour)}/hour of new nodes, ${money(p.cost.expected)} expected for the batch (from ${p.solver.method})\n` +
      `LP lower bound (whole batch): ${money(p.bound)}${ratio}\n` +
      node +
      `FFD baseline: ${money(p.baseline.expected)} expected, ${p.baseline.unplaced} unplaced${vs(p.baseline)}\n` +
      (greedy
        ? `Per-task greedy: ${money(greedy.expected)} expected, ${greedy.unplaced} unplaced${vs(greedy)}\n`
        : ''),
  );
}
