/**
 * The flags every command spells the same way, kubectl's dialect: `-o table|wide|json|yaml` on commands
 * that print objects (unknown values refused), `--nats`/`--creds` on commands that talk to a broker, and
 * the printers behind `-o`.
 *
 * @example
 * outputOption(program.command('get nodes')).action((flags: { output: Output }) =>
 *   printObjects(flags.output, nodes, [column('NAME', (n) => n.name)]),
 * );
 */
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Command, Option } from 'commander';
import { stringify } from 'yaml';
import { UsageError } from './errors.ts';
import { table } from './table.ts';

/** What `-o` may say on a command that prints objects. */
export const OUTPUTS = ['table', 'wide', 'json', 'yaml'] as const;
/** One of {@link OUTPUTS}. */
export type Output = (typeof OUTPUTS)[number];

/**
 * Adds `-o, --output <format>` with the formats this command can print (default `table`); commander
 * refuses any other value with a usage error (exit code 2).
 */
export function outputOption(cmd: Command, formats: readonly string[] = OUTPUTS): Command {
  return cmd.addOption(
    new Option('-o, --output <format>', `output format: ${formats.join(', ')}`)
      .choices(formats)
      .default(formats[0]),
  );
}

/** Adds `--nats <url>` and `--creds <file>`: the broker to ask, and the credentials to ask it with. */
export function natsOptions(cmd: Command, what = 'NATS server the broker listens on'): Command {
  return cmd
    .option('--nats <url>', `${what}, e.g. nats://127.0.0.1:4222`)
    .option('--creds <file>', 'NATS credentials (nkey seed .nk or .creds)');
}

const SECONDS = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 } as const;

/**
 * A time flag (`--since`, `--until`) in epoch milliseconds: a duration back from `now` (`30m`, `12h`,
 * `7d`, `2w`), a date (`2026-11-01`, ISO 8601) or epoch milliseconds, as the history API takes them; a
 * usage error naming the flag for anything else.
 */
export function parseWhen(flag: string, value: string, now: number): number {
  const m = /^(\d+(?:\.\d+)?)([smhdw])$/.exec(value);
  if (m) return now - Number(m[1]) * SECONDS[m[2] as keyof typeof SECONDS] * 1000;
  const t = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (Number.isNaN(t))
    throw new UsageError(
      `${flag} must be a duration back from now (30m, 12h, 7d, 2w), a date (2026-11-01) or epoch milliseconds, not '${value}'`,
    );
  return t;
}

/**
 * Checks `--since` and `--until` as {@link parseWhen} reads them, and that the window is not empty,
 * before anything is opened: the history resolves them itself, against its own clock.
 */
export function checkWindow(since: string | undefined, until: string | undefined, now = Date.now()): void {
  const from = since === undefined ? undefined : parseWhen('--since', since, now);
  const to = until === undefined ? undefined : parseWhen('--until', until, now);
  if (from !== undefined && to !== undefined && to <= from)
    throw new UsageError('--until must be after --since');
}

/** A column of a table: its header, how a row's cell is made, and whether only `-o wide` shows it. */
export interface Column<T> {
  header: string;
  cell: (item: T) => string;
  wide?: boolean;
}

/** A column shown by `-o table` and `-o wide`. */
export function column<T>(header: string, cell: (item: T) => string): Column<T> {
  return { header, cell };
}

/** A column only `-o wide` shows. */
export function wideColumn<T>(header: string, cell: (item: T) => string): Column<T> {
  return { header, cell, wide: true };
}

/** `value` as JSON (two-space indent) or YAML, ending in a newline. */
export function serialize(output: 'json' | 'yaml', value: unknown): string {
  return output === 'json'
    ? `${JSON.stringify(value, null, 2)}\n`
    : stringify(value, { aliasDuplicateObjects: false });
}

/**
 * Prints a list of objects as `-o` asks: a table of the columns (the wide ones too for `wide`), or
 * `raw` (default: the items) as JSON or YAML.
 */
export function printObjects<T>(
  output: Output,
  items: readonly T[],
  columns: readonly Column<T>[],
  raw: unknown = items,
  write: (s: string) => void = (s) => process.stdout.write(s),
): void {
  if (output === 'json' || output === 'yaml') return write(serialize(output, raw));
  const shown = columns.filter((c) => output === 'wide' || !c.wide);
  write(
    table(
      shown.map((c) => c.header),
      items.map((item) => shown.map((c) => c.cell(item))),
    ),
  );
}

/**
 * Prints one object as `-o` asks: `text` (the human-readable description, `describe`'s default) for
 * table and wide, or `raw` as JSON or YAML.
 */
export function printObject(
  output: Output,
  raw: unknown,
  text: (wide: boolean) => string,
  write: (s: string) => void = (s) => process.stdout.write(s),
): void {
  if (output === 'json' || output === 'yaml') return write(serialize(output, raw));
  write(text(output === 'wide'));
}

/** How to run this `gantry` from the current directory, for the commands it suggests: `node bin/gantry.js`. */
export function gantryCommand(): string {
  const bin = fileURLToPath(new URL('gantry.js', import.meta.url));
  return `node ${relative(process.cwd(), bin) || bin}`;
}

/** The examples that ship with Gantry, as a path from the current directory (`examples` in the repository). */
export function shippedExamples(): string {
  return relative(process.cwd(), fileURLToPath(new URL('../examples', import.meta.url))) || '.';
}
