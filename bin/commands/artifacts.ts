/**
 * `gantry artifacts gc`: retention for the artifact stores (the state directory's `artifacts/`, or the
 * JetStream object store `gantry-artifacts` with --nats). A value is deleted when it was written more
 * than `--older-than` ago and no execution or run the history knows of used it since; the history is
 * caught up with the logs first, so a value a finished run just used is kept, and values younger than
 * the retention (a run still writing them) are never touched.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { artifactUse, markCollected } from '../../history/index.ts';
import type { CollectableArtifactStore, StoredArtifact } from '../../runtime/index.ts';
import { openLocalArtifacts } from '../../runtime/index.ts';
import { openJetStreamArtifacts } from '../../runtime/nats-artifacts.ts';
import { connectCli, overNats } from '../connect.ts';
import { ARTIFACT_BUCKET } from '../credentials.ts';
import { UsageError } from '../errors.ts';
import { column, type Output, outputOption, printObjects, wideColumn } from '../options.ts';
import { historyOptions, withCaughtUpHistory } from './history.ts';

const UNITS = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

/** `30d`, `12h`, `90m`, `2w` in milliseconds; a usage error for anything else. */
export function retention(flag: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)([mhdw])$/.exec(v);
  if (!m) throw new UsageError(`${flag} must be a duration such as 30d, 12h or 2w, not '${v}'`);
  return Number(m[1]) * UNITS[m[2] as keyof typeof UNITS];
}

/** What gc decided about one value. */
export interface GcItem extends StoredArtifact {
  action: 'delete' | 'keep';
  why: 'unused' | 'never-referenced' | 'used-recently' | 'written-recently';
  lastUsed: number | null;
}

/** Which values to delete: written and last used (if ever) before `cutoff`. Pure. */
export function decide(
  values: readonly StoredArtifact[],
  use: Map<string, { lastUsed: number | null }>,
  cutoff: number,
): GcItem[] {
  return values.map((v) => {
    const lastUsed = use.get(v.ref)?.lastUsed ?? null;
    if (v.storedAt >= cutoff) return { ...v, lastUsed, action: 'keep', why: 'written-recently' };
    if (lastUsed !== null && lastUsed >= cutoff)
      return { ...v, lastUsed, action: 'keep', why: 'used-recently' };
    return { ...v, lastUsed, action: 'delete', why: lastUsed === null ? 'never-referenced' : 'unused' };
  });
}

const when = (t: number | null) =>
  t === null ? '' : new Date(t).toISOString().slice(0, 19).replace('T', ' ');
const size = (b: number) =>
  b < 1024
    ? `${b} B`
    : b >= 2 ** 30
      ? `${(b / 2 ** 30).toFixed(1)} GiB`
      : b >= 2 ** 20
        ? `${(b / 2 ** 20).toFixed(1)} MiB`
        : `${(b / 1024).toFixed(1)} KiB`;

const sum = (items: readonly GcItem[]) => items.reduce((s, i) => s + i.bytes, 0);

const COLUMNS = [
  column<GcItem>('ARTIFACT', (i) => i.ref.slice(0, 19)),
  column<GcItem>('ACTION', (i) => i.action),
  column<GcItem>('WHY', (i) => i.why),
  column<GcItem>('SIZE', (i) => size(i.bytes)),
  column<GcItem>('WRITTEN', (i) => when(i.storedAt)),
  column<GcItem>('LAST USED', (i) => when(i.lastUsed)),
  wideColumn<GcItem>('REF', (i) => i.ref),
];

interface GcFlags {
  olderThan: string;
  dryRun?: boolean;
  state: string;
  nats?: string;
  creds?: string;
  postgres?: string;
  output: Output;
  all?: boolean;
  force?: boolean;
}

/** Adds `gantry artifacts gc`. */
export function registerArtifactsCommands(program: Command): void {
  const artifacts = program
    .command('artifacts')
    .description('The artifact stores: retention and garbage collection');
  outputOption(
    historyOptions(
      artifacts
        .command('gc')
        .description('Delete stored values written and last used longer ago than --older-than')
        .requiredOption('--older-than <duration>', 'retention: 30d, 12h, 2w')
        .option('--dry-run', 'say what would be deleted, delete nothing')
        .option('--all', 'list the values kept too')
        .option('--force', 'delete even when the history knows no executions at all')
        .option(
          '--state <dir>',
          'state directory of an embedded Gantry (its artifacts/ and logs)',
          '.gantry/state',
        )
        .option('--nats <url>', 'the JetStream object store on this server (and its logs)')
        .option('--creds <file>', 'NATS credentials'),
    ),
  ).action(async (flags: GcFlags & { history?: string }) => {
    if (flags.history)
      throw new UsageError('gc opens the history itself: pass --postgres or --state, not --history');
    const keep = retention('--older-than', flags.olderThan);
    const target = flags.nats ? { nats: flags.nats, creds: flags.creds } : undefined;
    const conn = target ? await connectCli(target, 'gantry-artifacts-gc') : undefined;
    try {
      const store: CollectableArtifactStore = target
        ? await overNats(target, () => openJetStreamArtifacts(conn!.connection, ARTIFACT_BUCKET))
        : await openLocalArtifacts(join(flags.state, 'artifacts'));
      const values: StoredArtifact[] = [];
      for await (const v of store.list()) values.push(v);
      const now = Date.now();
      const items = await withCaughtUpHistory(flags, async (history) => {
        const use = await artifactUse(
          history.db,
          values.map((v) => v.ref),
          now,
        );
        const decided = decide(values, use, now - keep);
        const doomed = decided.filter((i) => i.action === 'delete');
        const [known] = await history.db.query<{ n: number }>('select count(*)::int as n from executions');
        if (doomed.length > 0 && (known?.n ?? 0) === 0 && !flags.force)
          throw new UsageError(
            `the history at ${history.db.where} knows no executions, so every old value looks unused: ` +
              `is this the right --state or --postgres? (--force deletes them anyway)`,
          );
        if (!flags.dryRun) {
          for (const [n, i] of doomed.entries()) {
            await store.delete(i.ref);
            if (n % 1000 === 999) process.stderr.write(`deleted ${n + 1} of ${doomed.length}\n`);
          }
          await markCollected(history.db, doomed, now);
        }
        return decided;
      });
      const doomed = items.filter((i) => i.action === 'delete');
      const kept = items.filter((i) => i.action === 'keep');
      const where =
        store.kind === 'local' ? join(flags.state, 'artifacts') : `the object store ${ARTIFACT_BUCKET}`;
      const recently = `written or used in the last ${flags.olderThan}`;
      const text = flags.output === 'table' || flags.output === 'wide';
      const shown = flags.all ? items : doomed;
      if (text && shown.length === 0) {
        // An empty table says nothing; one line says what gc found.
        process.stdout.write(
          `${flags.dryRun ? 'nothing would be deleted' : 'nothing to delete'} from ${where}: ` +
            `${items.length === 0 ? 'it holds no values' : `kept all ${kept.length} values (${size(sum(kept))}), ${recently}`}\n`,
        );
        return;
      }
      printObjects(flags.output, shown, COLUMNS, { dryRun: !!flags.dryRun, items });
      if (text)
        process.stderr.write(
          `${flags.dryRun ? 'would delete' : 'deleted'} ${doomed.length} of ${items.length} values (${size(sum(doomed))}) ` +
            `from ${where}; kept ${kept.length} (${size(sum(kept))}) ${recently}\n`,
        );
    } finally {
      await conn?.close();
    }
  });
}
