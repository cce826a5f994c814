/**
 * Vitest's global setup: before any test file runs, finds the programs the integration tests need
 * (nats-server, Chromium, promtool),
 * installs the missing ones when it may, or stops the run with one line naming what to install.
 */
import { aptInstall, locate, mayInstall, notFound, REQUIREMENTS, remedy } from './requirements.ts';

export default function setup(): void {
  const missing = REQUIREMENTS.filter((r) => locate(r) === undefined);
  const plan = remedy(missing, mayInstall());
  if (plan.kind === 'none') return;
  if (plan.kind === 'install') {
    process.stderr.write(`${plan.line}\n`);
    const failed = aptInstall(plan.packages);
    const still = REQUIREMENTS.filter((r) => locate(r) === undefined);
    if (failed === undefined && still.length === 0) return;
    stop(failed ?? notFound(still));
  }
  stop(plan.kind === 'stop' ? plan.line : '');
}

function stop(line: string): never {
  process.stderr.write(`\nnpm test: ${line}\n\n`);
  process.exit(1);
}
