/** How the console writes money, times and durations: as the CLI does. */

/** Dollars as `gantry` prints them (runtime `formatUsd`): four decimals under $1, two under $100, none above; zero as `$0`. */
export const money = (v: number | null | undefined) =>
  v === null || v === undefined
    ? ''
    : v === 0
      ? '$0'
      : v >= 100
        ? `$${v.toFixed(0)}`
        : v >= 1
          ? `$${v.toFixed(2)}`
          : `$${v.toFixed(4)}`;

/** A price per hour as `gantry describe run` prints it. */
export const perHour = (v: number | null | undefined) =>
  v === null || v === undefined ? '' : `$${v.toFixed(2)}`;

/** A time as `gantry get runs` prints it (UTC). */
export const when = (t: number | undefined | null) =>
  t === undefined || t === null ? '' : new Date(t).toISOString().slice(0, 19).replace('T', ' ');

/** A duration in the largest unit that reads well. */
export function took(ms: number | undefined | null): string {
  if (ms === undefined || ms === null) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/** A short hash as `gantry lineage` prints it. */
export const short = (h: string) => (h.startsWith('sha256:') ? h.slice(7, 19) : h);
