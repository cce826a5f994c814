/**
 * What a long command shows while it works: event lines (placements, retries, waits) and progress bars
 * for large `map`s. In a terminal the bars redraw on stderr and events print above them, so the two
 * never interleave; elsewhere (a pipe, a CI log) events are plain lines on stdout and progress is a line
 * on stderr every few seconds. `quiet` drops the events, `progress: false` the bars.
 *
 * @example
 * const display = createDisplay({ quiet: flags.quiet, progress: flags.progress });
 * const runtime = new Runtime({ ...services, progress: display.progress });
 * display.event('  placed  train → aws-use1/h100-od');
 * display.close();
 */
import { MultiBar, type SingleBar } from 'cli-progress';
import { type Progress, type ProgressFactory, progressLines } from '../runtime/index.ts';

/** Options of {@link createDisplay}. */
export interface DisplayOptions {
  /** Print no events. */
  quiet?: boolean;
  /** Show progress of large maps; default true. */
  progress?: boolean;
  /** Where events go; default process.stdout. */
  out?: NodeJS.WriteStream;
  /** Where bars and progress lines go; default process.stderr. */
  err?: NodeJS.WriteStream;
}

/** Events and progress of one command. */
export interface Display {
  /** Prints an event line (without its newline), above the bars if any are showing. */
  event(line: string): void;
  /** The progress factory for the runtime, or false for none. */
  readonly progress: ProgressFactory | false;
  /** Stops the bars. */
  close(): void;
}

/** Below this many items a map shows no progress (it is over before a bar would help). */
export const MIN_PROGRESS_ITEMS = 50;

/** Makes the display for a command run with these flags. */
export function createDisplay(opts: DisplayOptions = {}): Display {
  const out = opts.out ?? process.stdout;
  const err = opts.err ?? process.stderr;
  const terminal = err.isTTY === true;
  let bars: MultiBar | undefined;
  let showing = 0;
  // Events go above the bars only when they would reach the same terminal anyway.
  const aboveBars = () => bars !== undefined && showing > 0 && out.isTTY === true;

  const barFactory: ProgressFactory = (label, total) => {
    if (total < MIN_PROGRESS_ITEMS) return { tick() {}, done() {} };
    if (!terminal) return progressLines(label, total, (line) => err.write(`${line}\n`));
    bars ??= new MultiBar({
      format: '{label} [{bar}] {value}/{total} {percentage}% · {eta_formatted} left',
      stream: err,
      hideCursor: true,
      etaBuffer: 200,
      clearOnComplete: false,
    });
    const bar: SingleBar = bars.create(total, 0, { label });
    showing++;
    let finished = false;
    const progress: Progress = {
      tick: (n) => bar.increment(n),
      done: () => {
        if (finished) return;
        finished = true;
        bar.update(total);
        showing--;
        if (showing === 0) {
          bars?.stop();
          bars = undefined;
        }
      },
    };
    return progress;
  };

  return {
    event(line) {
      if (opts.quiet || !line) return;
      if (aboveBars()) bars!.log(`${line}\n`);
      else out.write(`${line}\n`);
    },
    progress: opts.progress === false ? false : barFactory,
    close() {
      bars?.stop();
      bars = undefined;
      showing = 0;
    },
  };
}
