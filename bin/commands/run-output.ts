/**
 * What `gantry run` prints while a run goes: a line per run event, a line when a placed task waits long
 * for its node, and the run's cost by task and pool at the end.
 */
import { formatUsd, type LineageRecord, type RunEvent } from '../../runtime/index.ts';
import type { Display } from '../progress.ts';
import { table } from '../table.ts';

/** One line per run event, as `gantry run` prints them. */
export function eventLine(ev: RunEvent): string {
  const p = ev.placement;
  const where = p ? `${p.cluster}/${p.pool} ${p.capacityType} $${p.pricePerHour.toFixed(2)}/h` : '';
  const task = ev.task.padEnd(14);
  switch (ev.type) {
    case 'placed':
      return `  placed     ${task} → ${where}  (${ev.message ? `${ev.message}; ` : ''}${p?.why ?? ''})`;
    case 'workers':
      return `  warm       ${task} → ${where}  (${ev.message ?? ''})`;
    case 'preempted':
      return `  PREEMPTED  ${task} on ${p ? `${p.cluster}/${p.node}` : '?'}: ${ev.message ?? ''}`;
    case 'retry':
      return `  retry      ${task} ${ev.message ?? ''}`;
    case 'failed':
      return `  failed     ${task} on ${where}: ${ev.message ?? ''}`;
    case 'succeeded':
      return `  done       ${task} on ${where}  ${formatUsd(ev.costUsd ?? 0)}`;
    case 'held':
      return `  held       ${task} ${ev.hold ? `(${ev.hold.kind}) ${ev.hold.detail}` : (ev.message ?? '')}`;
    case 'cached':
      return `  cached     ${task} (output reused, nothing ran)`;
    default:
      return '';
  }
}

/** The cost of a run by task and pool, from its lineage. */
export function costTable(records: readonly LineageRecord[]): string {
  const rows = new Map<
    string,
    {
      task: string;
      where: string;
      runs: number;
      failed: number;
      preempted: number;
      seconds: number;
      cost: number;
    }
  >();
  for (const r of records) {
    if (!r.placement) continue;
    const where = `${r.placement.cluster}/${r.placement.pool} (${r.placement.capacityType}${r.placement.gpuModel ? `, ${r.placement.gpuMilli / 1000}× ${r.placement.gpuModel}` : ''})`;
    const key = `${r.task}|${where}`;
    const row = rows.get(key) ?? {
      task: r.task,
      where,
      runs: 0,
      failed: 0,
      preempted: 0,
      seconds: 0,
      cost: 0,
    };
    row.runs++;
    if (r.error) row.failed++;
    row.preempted += r.preemptions;
    row.seconds += (r.endedAt - r.startedAt) / 1000;
    row.cost += r.costUsd;
    rows.set(key, row);
  }
  const total = [...rows.values()].reduce((a, r) => a + r.cost, 0);
  const body = [...rows.values()].map((r) => [
    r.task,
    r.where,
    String(r.runs),
    r.failed ? String(r.failed) : '',
    r.preempted ? String(r.preempted) : '',
    formatUsd(r.cost),
  ]);
  body.push(['total', '', '', '', '', formatUsd(total)]);
  return table(['TASK', 'WHERE', 'RUNS', 'FAILED', 'PREEMPTED', 'COST'], body);
}

/** Wall-clock milliseconds a placed task may wait to start before `gantry run` says so, then between lines. */
const WAIT_FIRST_MS = 5000;
const WAIT_EVERY_MS = 10_000;

/**
 * Says which placed tasks have not started yet (a new node launching, a pod pulling its image): first
 * after WAIT_FIRST_MS, then every WAIT_EVERY_MS while they wait, so a run on slow clusters never looks
 * hung.
 */
export function waitWatch(display: Display) {
  const waiting = new Map<string, { ev: RunEvent; since: number; next: number }>();
  const timer = setInterval(() => {
    const now = Date.now();
    for (const w of waiting.values()) {
      if (now < w.next) continue;
      w.next += WAIT_EVERY_MS;
      const p = w.ev.placement!;
      display.event(
        `  waiting    ${w.ev.task.padEnd(14)} for ${p.cluster}/${p.pool}: node launching or task starting, ${Math.round((now - w.since) / 1000)} s`,
      );
    }
  }, 250);
  timer.unref();
  return {
    seen(ev: RunEvent) {
      const now = Date.now();
      if (ev.type === 'placed' && ev.placement)
        waiting.set(ev.execution, { ev, since: now, next: now + WAIT_FIRST_MS });
      else waiting.delete(ev.execution);
    },
    stop: () => clearInterval(timer),
  };
}
