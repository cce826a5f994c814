/**
 * A PostgreSQL database of its own for a test file: created on the server the tests use (the one in
 * `GANTRY_TEST_POSTGRES`, default the local server on 127.0.0.1:5432) and dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The server tests use: a URL whose database is the maintenance one (`postgres`). */
export const TEST_POSTGRES =
  process.env.GANTRY_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A fresh database: its URL, and `drop()` for the test's end. */
export async function createTestDatabase(
  prefix = 'gantry_test',
): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_POSTGRES });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(TEST_POSTGRES);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: TEST_POSTGRES });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}
