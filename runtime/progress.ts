/**
 * Progress of long fan-outs: a bar (cli-progress) when stderr is a terminal, a line every few seconds
 * otherwise (CI logs, pipes).
 */
import { SingleBar } from 'cli-progress';

/** Counts finished items of one `map`. */
export interface Progress {
  tick(n: number): void;
  done(): void;
}

/** Makes a progress display for `total` items. */
export type ProgressFactory = (label: string, total: number) => Progress;

/** Below this many items, no progress is shown. */
const MIN_ITEMS = 50;
const LINE_EVERY_MS = 5000;

/** A bar on a TTY, periodic lines on stderr otherwise. */
export const defaultProgress: ProgressFactory = (label, total) => {
  if (total < MIN_ITEMS) return { tick() {}, done() {} };
  if (process.stderr.isTTY) {
    const bar = new SingleBar({
      format: `${label} [{bar}] {value}/{total} {percentage}% · {eta_formatted} left`,
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 200,
    });
    bar.start(total, 0);
    return { tick: (n) => bar.increment(n), done: () => bar.stop() };
  }
  return progressLines(label, total, (line) => process.stderr.write(`${line}\n`));
};

/** Prints `label: done/total (pct) rate/s` every few seconds and once at the end. */
export function progressLines(
  label: string,
  total: number,
  write: (line: string) => void,
  everyMs = LINE_EVERY_MS,
): Progress {
  const started = Date.now();
  let count = 0;
  let last = started;
  const line = () => {
    const secs = (Date.now() - started) / 1000;
    write(
      `${label}: ${count}/${total} (${Math.floor((100 * count) / total)}%) ${Math.round(count / Math.max(secs, 0.001))}/s`,
    );
  };
  return {
    tick(n) {
      count += n;
      const now = Date.now();
      if (now - last >= everyMs) {
        last = now;
        line();
      }
    },
    done: line,
  };
}
