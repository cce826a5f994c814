/**
 * The `gantry` command line: one sub-command per file under `bin/commands/`.
 */
import { Command, CommanderError } from 'commander';
import { registerCatalogCommand } from './commands/catalog.ts';
import { registerClusterCommands } from './commands/cluster.ts';
import { registerLogsCommand } from './commands/logs.ts';
import { registerPlanCommand } from './commands/plan.ts';
import { registerHistoryCommands } from './commands/history.ts';
import { registerHistoryServeCommand } from './commands/history-serve.ts';
import { registerArtifactsCommands } from './commands/artifacts.ts';
import { registerPlatformCommands } from './commands/platform.ts';
import { registerReportCommand } from './commands/report.ts';
import { registerRunCommands } from './commands/run.ts';
import { registerSpotPricesCommand } from './commands/spot-prices.ts';
import { registerWorkerCommand } from './commands/worker.ts';
import { registerServeCommands } from './commands/serve.ts';
import { registerUpCommand } from './commands/up.ts';
import { registerValidateCommand } from './commands/validate.ts';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { HistoryQueryError, HistoryUnavailableError, SchemaTooNewError } from '../history/index.ts';
import { PolicyError, ValidationError } from '../policies/index.ts';
import { StoreLockedError } from '../protocol/index.ts';
import { OperationalError, UsageError } from './errors.ts';
import { strictFlags } from './flags.ts';

/** Gantry's version, from package.json. */
export const VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/**
 * Exit codes, as README.md documents them: 0 done; 1 failed (bad files, operational failures, a failed
 * run, and unplaced or held work with `--fail-on-unplaced` / `--fail-on-held`); 2 a usage mistake (an
 * unknown command or flag, a bad flag value).
 */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** Builds the command tree. Exported so tests can run commands in-process. */
export function buildProgram(): Command {
  const program = new Command('gantry')
    .description(
      'Puts every task of an AI/ML workflow on the cheapest hardware that fits, across many clusters.',
    )
    .version(`gantry ${VERSION} (Node ${process.version})`, '--version', 'print the version and exit')
    .exitOverride();
  registerValidateCommand(program);
  registerCatalogCommand(program);
  registerPlanCommand(program);
  registerServeCommands(program);
  registerUpCommand(program);
  registerClusterCommands(program);
  registerPlatformCommands(program);
  registerRunCommands(program);
  registerWorkerCommand(program);
  registerLogsCommand(program);
  registerReportCommand(program);
  registerSpotPricesCommand(program);
  registerHistoryCommands(program);
  registerHistoryServeCommand(program);
  registerArtifactsCommands(program);
  // A usage mistake is one line too: what was wrong, and where the command's flags are listed.
  const hint = (cmd: Command, path: string) => {
    cmd.configureOutput({
      outputError: (text, write) =>
        write(`gantry: ${text.replace(/^error: /, '').trimEnd()} (gantry ${path}--help lists them)\n`),
    });
    for (const sub of cmd.commands) hint(sub, `${path}${sub.name()} `);
  };
  hint(program, '');
  strictFlags(program);
  return program;
}

/**
 * Runs the CLI and returns the exit code. Expected failures (bad flags, bad files) print one clear
 * message; only a bug prints a stack trace.
 */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (err instanceof UsageError) {
      process.stderr.write(`gantry: ${err.message}\n`);
      return EXIT.usage;
    }
    if (err instanceof StoreLockedError) {
      // The state directory's store (`<state>/broker`, `<state>/runtime`) is held by a running process.
      process.stderr.write(
        `gantry: ${dirname(err.dir)} is in use by another Gantry process (pid ${err.pid}, a \`gantry up\` or a run?): ` +
          `stop it, pass another --state, or reach a broker over NATS with --nats\n`,
      );
      return EXIT.failed;
    }
    if (err instanceof HistoryQueryError) {
      process.stderr.write(`gantry: ${err.message}\n`);
      return EXIT.usage;
    }
    if (
      err instanceof OperationalError ||
      err instanceof HistoryUnavailableError ||
      err instanceof SchemaTooNewError
    ) {
      process.stderr.write(`gantry: ${err.message}\n`);
      return EXIT.failed;
    }
    if (err instanceof PolicyError) {
      // A bad file prints each problem as `gantry validate` does, one per line.
      process.stderr.write(err instanceof ValidationError ? `${err.message}\n` : `gantry: ${err.message}\n`);
      return EXIT.failed;
    }
    throw err;
  }
}
