/**
 * The SQL seam: one small `Db` interface over PostgreSQL (node-postgres, a pool) and PGlite (Postgres
 * compiled to WebAssembly, in a directory). The history store sends both the same SQL; only opening
 * and closing differ. Integers (`bigint` milliseconds, counts) come back as numbers, not strings.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { PGlite, types as pgliteTypes } from '@electric-sql/pglite';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { lockDirectory, StoreLockedError } from '../protocol/index.ts';
import { HistoryUnavailableError } from './errors.ts';

/** A row as a query returns it. */
export type Row = Record<string, unknown>;

/** Runs statements: a database, or one transaction on it. */
export interface Queryable {
  /** Runs one statement with `$1…` parameters; resolves with its rows. */
  query<T extends object = Row>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /**
   * Runs `copy <table> (<columns>) from stdin` with `data` as the rows, in PostgreSQL's binary format
   * (copy-binary.ts `BinaryCopy`): bulk rows without parameters, numbers or escapes to parse.
   */
  copy(target: string, data: Uint8Array): Promise<void>;
}

/** A history database. */
export interface Db extends Queryable {
  /** `pglite` or `postgres`. */
  readonly kind: 'pglite' | 'postgres';
  /** Where it is, for messages (a directory, or the server without its password). */
  readonly where: string;
  /** Runs statements separated by `;` without parameters (migrations). */
  exec(sql: string): Promise<void>;
  /** Runs `fn` in a transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Takes the session-level advisory lock `key` unless another session holds it (then `undefined`):
   * one process at a time ingests a source, however many serve queries. The lock goes with its
   * session: `lost` settles when that connection ends.
   */
  tryLock(key: number): Promise<DbLock | undefined>;
  close(): Promise<void>;
}

/** A held advisory lock. */
export interface DbLock {
  /** Resolves when the lock's session ended other than by `release` (the server went away). */
  readonly lost: Promise<void>;
  release(): Promise<void>;
}

const int8 = (v: string) => Number(v);

/**
 * Opens (creating on first use, which takes a few seconds) an embedded PGlite database in `dir`. One
 * process at a time: another that holds it makes this reject with `HistoryUnavailableError`.
 *
 * @example
 * const db = await openPglite('.gantry/state/history');
 */
export async function openPglite(dir: string, onCreate?: (dir: string) => void): Promise<Db> {
  await mkdir(dir, { recursive: true });
  let release: () => Promise<void>;
  try {
    release = await lockDirectory(dir);
  } catch (err) {
    if (err instanceof StoreLockedError)
      throw new HistoryUnavailableError(
        dir,
        `the history database in ${dir} is in use by process ${err.pid} (a gantry up or gantry history?): ask that one with --history <url>, or stop it`,
        { cause: err },
      );
    throw err;
  }
  let db: PGlite;
  if (!existsSync(`${dir}/pgdata/PG_VERSION`)) onCreate?.(dir);
  try {
    db = await PGlite.create(`${dir}/pgdata`, { parsers: { [pgliteTypes.INT8]: int8 } });
  } catch (err) {
    await release();
    throw new HistoryUnavailableError(dir, `cannot open the history database in ${dir}: ${String(err)}`, {
      cause: err,
    });
  }
  const run = (q: Pick<PGlite, 'query'>): Queryable => ({
    async query<T extends object>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
      return (await q.query<T>(sql, params as unknown[])).rows;
    },
    async copy(target, data) {
      if (data.length === 0) return;
      await q.query(`copy ${target} from '/dev/blob' with (format binary)`, [], { blob: new Blob([data]) });
    },
  });
  return {
    kind: 'pglite',
    where: dir,
    ...run(db),
    async exec(sql) {
      await db.exec(sql);
    },
    transaction: (fn) => db.transaction((tx) => fn(run(tx))),
    // One process holds the directory, so its one session stands for the process.
    async tryLock(key) {
      const [row] = (await db.query<{ ok: boolean }>('select pg_try_advisory_lock($1) as ok', [key])).rows;
      if (!row?.ok) return undefined;
      return {
        lost: new Promise<void>(() => undefined),
        release: async () => void (await db.query('select pg_advisory_unlock($1)', [key])),
      };
    },
    async close() {
      try {
        await db.close();
      } finally {
        await release();
      }
    },
  };
}

/** `postgres://user:***@host:port/db`: a URL fit for messages. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(a PostgreSQL URL)';
  }
}

/**
 * Connects to a PostgreSQL server (a pool of `max` connections) and checks it answers. Unreachable
 * servers, unknown databases and refused logins reject with one `HistoryUnavailableError` line.
 *
 * @example
 * const db = await openPostgres('postgres://gantry@db:5432/gantry');
 */
export async function openPostgres(url: string, opts: { max?: number } = {}): Promise<Db> {
  const where = redact(url);
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 4,
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === 20 ? int8 : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client whose server went away must not crash the process; the next query reports it.
  pool.on('error', () => undefined);
  try {
    await pool.query('select 1');
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw postgresProblem(err, where);
  }
  const query = async <T extends object>(
    q: pg.Pool | pg.PoolClient,
    sql: string,
    params: readonly unknown[] = [],
  ): Promise<T[]> => {
    try {
      return (await q.query<T>(sql, params as unknown[])).rows;
    } catch (err) {
      throw connectionLost(err, where) ?? err;
    }
  };
  const copy = async (client: pg.PoolClient, target: string, data: Uint8Array): Promise<void> => {
    if (data.length === 0) return;
    try {
      await pipeline(
        (async function* () {
          yield data;
        })(),
        client.query(copyFrom(`copy ${target} from stdin with (format binary)`)),
      );
    } catch (err) {
      throw connectionLost(err, where) ?? err;
    }
  };
  return {
    kind: 'postgres',
    where,
    query: (sql, params) => query(pool, sql, params),
    async copy(target, data) {
      const client = await pool.connect();
      try {
        await copy(client, target, data);
      } finally {
        client.release();
      }
    },
    async exec(sql) {
      await query(pool, sql);
    },
    async transaction(fn) {
      const client = await pool.connect().catch((err: unknown) => {
        throw postgresProblem(err, where);
      });
      try {
        await client.query('begin');
        const out = await fn({
          query: (sql, params) => query(client, sql, params),
          copy: (target, data) => copy(client, target, data),
        });
        await client.query('commit');
        return out;
      } catch (err) {
        await client.query('rollback').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
    async tryLock(key) {
      // A connection of its own, apart from the pool: the lock lives as long as this session.
      const client = new pg.Client({ connectionString: url });
      let released = false;
      const lost = new Promise<void>((resolve) => {
        client.on('error', () => resolve());
        client.on('end', () => void (released || resolve()));
      });
      try {
        await client.connect();
        const { rows } = await client.query<{ ok: boolean }>('select pg_try_advisory_lock($1) as ok', [key]);
        if (rows[0]?.ok) {
          return {
            lost,
            async release() {
              released = true;
              await client.end().catch(() => undefined);
            },
          };
        }
      } catch (err) {
        released = true;
        await client.end().catch(() => undefined);
        throw postgresProblem(err, where);
      }
      released = true;
      await client.end().catch(() => undefined);
      return undefined;
    },
    close: () => pool.end(),
  };
}

const NETWORK: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'no such host',
  ETIMEDOUT: 'timed out',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
};

/** The one line for a failure to connect to PostgreSQL. */
export function postgresProblem(err: unknown, where: string): HistoryUnavailableError {
  const e = err as { code?: string; message?: string; errors?: { code?: string }[] };
  const code = e.code ?? e.errors?.[0]?.code;
  if (code && NETWORK[code])
    return new HistoryUnavailableError(
      where,
      `cannot reach PostgreSQL at ${where} (${NETWORK[code]}): start it, or leave out --postgres to keep history in the state directory`,
      { cause: err },
    );
  if (code === '3D000')
    return new HistoryUnavailableError(
      where,
      `PostgreSQL at ${where}: ${e.message}: create it (createdb), or name another database in --postgres`,
      { cause: err },
    );
  if (code === '28P01' || code === '28000')
    return new HistoryUnavailableError(
      where,
      `PostgreSQL at ${where} refused the login (${e.message}): check the user and password in --postgres`,
      { cause: err },
    );
  return new HistoryUnavailableError(where, `PostgreSQL at ${where}: ${e.message ?? String(err)}`, {
    cause: err,
  });
}

function connectionLost(err: unknown, where: string): HistoryUnavailableError | undefined {
  const code = (err as { code?: string }).code;
  if (code && NETWORK[code]) return postgresProblem(err, where);
  if (err instanceof Error && /Connection terminated|not queryable/i.test(err.message))
    return new HistoryUnavailableError(
      where,
      `lost the connection to PostgreSQL at ${where}: ${err.message}`,
      {
        cause: err,
      },
    );
  return undefined;
}
