/** What an execution cost: its lease's hourly price over the time it ran. */

/**
 * USD for `pricePerHour` from `from` to `to` (ms). `timeScale` is simulated seconds per wall-clock
 * second: simulated clusters run faster, and their costs scale with them.
 */
export function costUsd(pricePerHour: number, from: number, to: number, timeScale = 1): number {
  return (pricePerHour * Math.max(0, to - from) * timeScale) / 3_600_000;
}
