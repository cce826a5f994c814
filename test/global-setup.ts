/**
 * Vitest's global setup: before any test file runs, finds the programs (nats-server, Chromium, promtool)
 * and the PostgreSQL server the integration tests need, installs or starts the missing ones when it may,
 * or stops the run with one line naming what to do.
 */
import { ensurePostgres } from './postgres-server.ts';
import { aptInstall, locate, mayInstall, notFound, REQUIREMENTS, remedy } from './requirements.ts';

export default async function setup(): Promise<void> {
  const missing = REQUIREMENTS.filter((r) => locate(r) === undefined);
  const plan = remedy(missing, mayInstall());
  if (plan.kind === 'install') {
    process.stderr.write(`${plan.line}\n`);
    const failed = aptInstall(plan.packages);
    const still = REQUIREMENTS.filter((r) => locate(r) === undefined);
    if (failed !== undefined || still.length > 0) stop(failed ?? notFound(still));
  } else if (plan.kind === 'stop') stop(plan.line);
  const postgres = await ensurePostgres((line) => process.stderr.write(`${line}\n`));
  if (postgres) stop(postgres);
}

function stop(line: string): never {
  process.stderr.write(`\nnpm test: ${line}\n\n`);
  process.exit(1);
}
