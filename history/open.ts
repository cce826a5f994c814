/**
 * Opening the history: PostgreSQL when a URL is given (`--postgres`, or `GANTRY_POSTGRES`), else the
 * embedded PGlite in a directory; migrated to the current schema either way.
 */
import { type Db, openPglite, openPostgres } from './db.ts';
import { Ingester } from './ingest.ts';
import { migrate } from './migrations.ts';

/** Options of {@link openHistory}. */
export interface HistoryOptions {
  /** A PostgreSQL URL; without it, PGlite in `dir`. */
  postgres?: string | undefined;
  /** The PGlite directory (`<state>/history`). */
  dir: string;
  /** Told before a first PGlite start, which takes a few seconds. */
  onCreate?: (dir: string) => void;
}

/** An open, migrated history database and its ingester. */
export interface History {
  db: Db;
  ingester: Ingester;
  close(): Promise<void>;
}

/** Opens and migrates the history database. */
export async function openHistory(opts: HistoryOptions): Promise<History> {
  const db = opts.postgres ? await openPostgres(opts.postgres) : await openPglite(opts.dir, opts.onCreate);
  try {
    await migrate(db);
  } catch (err) {
    await db.close();
    throw err;
  }
  return { db, ingester: new Ingester(db), close: () => db.close() };
}
