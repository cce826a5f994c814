/** What an execution cost: its lease's hourly price over the time it ran. */

/**
 * USD for `pricePerHour` from `from` to `to` (ms). `timeScale` is simulated seconds per wall-clock
 * second: simulated clusters run faster, and their costs scale with them.
 */
export function costUsd(pricePerHour: number, from: number, to: number, timeScale = 1): number {
  return (pricePerHour * Math.max(0, to - from) * timeScale) / 3_600_000;
}

/**
 * USD for an execution's result at `pricePerHour`: over the time it ran on its cluster's clock when
 * its host said (`ranMs`), else from its start to its end on `timeScale`.
 */
export function resultCostUsd(
  pricePerHour: number,
  r: { startedAt: number; endedAt: number; ranMs?: number | undefined },
  timeScale = 1,
): number {
  return r.ranMs === undefined
    ? costUsd(pricePerHour, r.startedAt, r.endedAt, timeScale)
    : (pricePerHour * r.ranMs) / 3_600_000;
}

/**
 * Dollars as Gantry prints them, in the CLI and the web console alike: nothing spent is `$0`; four
 * decimals under $1, two under $100, none above.
 *
 * @example
 * formatUsd(0); // '$0'
 * formatUsd(0.01234); // '$0.0123'
 */
export function formatUsd(usd: number): string {
  if (usd === 0) return '$0';
  return usd >= 100 ? `$${usd.toFixed(0)}` : usd >= 1 ? `$${usd.toFixed(2)}` : `$${usd.toFixed(4)}`;
}
