/**
 * The PostgreSQL server the history tests use: found answering, started when Debian's package is
 * installed but stopped, installed (and set to trust loopback logins) when it is missing and this
 * process may install, or else a line that says what to do. Tests never skip for want of it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { TEST_POSTGRES } from './postgres.ts';
import { aptInstall, mayInstall } from './requirements.ts';

/** Whether the server answers, or why not. */
export async function probe(url = TEST_POSTGRES): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    await c.query('select 1');
    return undefined;
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return e.code ?? e.message ?? String(err);
  } finally {
    await c.end().catch(() => undefined);
  }
}

const CONF = '/etc/postgresql';

/** Starts the Debian clusters that are installed (`pg_ctlcluster <version> main start`). */
function startDebianClusters(): string | undefined {
  if (!existsSync(CONF)) return 'not installed';
  for (const version of readdirSync(CONF)) {
    const r = spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start'], {
      encoding: 'utf8',
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    if (r.status !== 0 && !/already running/.test(r.stderr)) return (r.stderr || `exit ${r.status}`).trim();
  }
  return undefined;
}

/** Lets the tests log in over loopback without a password, as on a developer's machine. */
function trustLoopback(): void {
  for (const version of readdirSync(CONF)) {
    const hba = `${CONF}/${version}/main/pg_hba.conf`;
    if (!existsSync(hba)) continue;
    const text = readFileSync(hba, 'utf8');
    if (!text.includes('# gantry tests'))
      writeFileSync(
        hba,
        `# gantry tests\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n${text}`,
      );
  }
}

/**
 * Makes sure the tests' PostgreSQL answers; returns undefined when it does, else the line to stop with.
 * Only the default local server is started or installed: a GANTRY_TEST_POSTGRES elsewhere is the
 * caller's to run.
 */
export async function ensurePostgres(log: (line: string) => void): Promise<string | undefined> {
  const first = await probe();
  if (first === undefined) return undefined;
  const local = !process.env.GANTRY_TEST_POSTGRES;
  const what = `the tests need PostgreSQL at ${new URL(TEST_POSTGRES).host} (${first})`;
  if (local && existsSync(CONF) && mayInstall()) {
    log(`${what}: starting the installed server`);
    startDebianClusters();
    if ((await probe()) === undefined) return undefined;
  }
  if (local && !existsSync(CONF) && mayInstall()) {
    log(`${what}: installing the Debian package postgresql`);
    const failed = aptInstall(['postgresql']);
    if (failed) return failed;
    trustLoopback();
    const notStarted = startDebianClusters();
    if (notStarted) return `${what}: installed, but it would not start (${notStarted})`;
    spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', readdirSync(CONF)[0]!, 'main', 'reload']);
    if ((await probe()) === undefined) return undefined;
  }
  return (
    `${what}: install and start it (sudo apt-get install postgresql; sudo pg_ctlcluster <version> main start), ` +
    'or point GANTRY_TEST_POSTGRES at a server (postgres://user@host:5432/postgres), then run npm test again'
  );
}
