import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { spawnGantry } from '../test/cli.ts';
import { createDisplay } from './progress.ts';

/** A stream that records what is written, as a terminal (isTTY) or a pipe. */
function stream(tty: boolean, sink: string[]): NodeJS.WriteStream {
  const s = new Writable({
    write(chunk: Buffer, _enc, done) {
      sink.push(chunk.toString());
      done();
    },
  }) as unknown as NodeJS.WriteStream;
  Object.assign(s, { isTTY: tty, columns: 100 });
  return s;
}
const settle = () => new Promise((r) => setTimeout(r, 250));

describe('events and progress', () => {
  it('in a terminal, prints events above the bar that redraws on stderr, never into it', async () => {
    const screen: string[] = [];
    const out = stream(true, screen);
    const err = stream(true, screen);
    const outOnly: string[] = [];
    const write = out.write.bind(out);
    out.write = ((c: string) => (outOnly.push(String(c)), write(c))) as typeof out.write;
    const display = createDisplay({ out, err });
    const bar = (display.progress as Exclude<typeof display.progress, false>)('square', 200);
    bar.tick(50);
    await settle();
    display.event('  placed     cube → aws-use1/cpu-spot');
    bar.tick(50);
    await settle();
    const text = screen.join('');
    // The event was drawn by the bar's terminal (stderr), on a line of its own before the bar again.
    expect(outOnly).toEqual([]);
    // The bar's line is cleared (ESC[2K), the event printed, and the bar drawn again below it.
    expect(text).toMatch(
      /square \[[=-]+\] 50\/200 25%.*\x1b\[2K {2}placed {5}cube → aws-use1\/cpu-spot\n.*square \[[=-]+\] 100\/200 50%/s,
    );
    bar.done();
    display.event('  done       cube');
    expect(outOnly).toEqual(['  done       cube\n']);
    display.close();
  });

  it('elsewhere, events are plain lines on stdout and progress a line on stderr', () => {
    const o: string[] = [];
    const e: string[] = [];
    const display = createDisplay({ out: stream(false, o), err: stream(false, e) });
    const bar = (display.progress as Exclude<typeof display.progress, false>)('square', 100);
    display.event('  placed     square');
    bar.tick(100);
    bar.done();
    expect(o).toEqual(['  placed     square\n']);
    expect(e.join('')).toMatch(/^square: 100\/100 \(100%\) \d+\/s\n$/);
  });

  it('-q drops the events, --no-progress the bar, and small maps show none', () => {
    const o: string[] = [];
    const quiet = createDisplay({ quiet: true, out: stream(false, o), err: stream(false, o) });
    quiet.event('  placed     square');
    expect(o).toEqual([]);
    expect(createDisplay({ progress: false }).progress).toBe(false);
    const e: string[] = [];
    const small = createDisplay({ err: stream(true, e) });
    const p = (small.progress as Exclude<typeof small.progress, false>)('tiny', 10);
    p.tick(10);
    p.done();
    expect(e).toEqual([]);
  });

  it('gantry run -q prints no events and --no-progress no progress, through the binary', async () => {
    const args = [
      'run',
      'test/fixtures/workflows/suite.ts',
      '--task',
      'fanout',
      '--team',
      'ml',
      '-f',
      'test/fixtures/runtime-platform',
      '--input',
      '{"n":200,"cold":0}',
    ];
    const state = () => ['--state', mkdtempSync(join(tmpdir(), 'gantry-progress-'))];
    const plain = await spawnGantry([...args, ...state()]);
    expect(plain.code).toBe(0);
    expect(plain.out).toMatch(/^ {2}warm {7}square/m);
    expect(plain.err).toMatch(/^square: 200\/200 \(100%\)/m);
    const quiet = await spawnGantry([...args, ...state(), '-q', '--no-progress']);
    expect(quiet.code).toBe(0);
    expect(quiet.out).not.toMatch(/^ {2}(warm|placed|done) /m);
    expect(quiet.out).toMatch(/^run run-\S+ succeeded in/m);
    expect(quiet.err).toBe('');
  }, 60_000);
});
