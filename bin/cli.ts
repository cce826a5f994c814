/**
 * The `gantry` command line: one sub-command per file under `bin/commands/`.
 */
import { Command, CommanderError } from 'commander';
import { registerCatalogCommand } from './commands/catalog.ts';
import { registerClusterCommands } from './commands/cluster.ts';
import { registerPlanCommand } from './commands/plan.ts';
import { registerReportCommand } from './commands/report.ts';
import { registerRunCommands } from './commands/run.ts';
import { registerSpotPricesCommand } from './commands/spot-prices.ts';
import { registerWorkerCommand } from './commands/worker.ts';
import { registerServeCommands } from './commands/serve.ts';
import { registerValidateCommand } from './commands/validate.ts';
import { PolicyError, ValidationError } from '../policies/index.ts';
import { UsageError } from './errors.ts';

/** Builds the command tree. Exported so tests can run commands in-process. */
export function buildProgram(): Command {
  const program = new Command('gantry')
    .description(
      'Puts every task of an AI/ML workflow on the cheapest hardware that fits, across many clusters.',
    )
    .showHelpAfterError()
    .exitOverride();
  registerValidateCommand(program);
  registerCatalogCommand(program);
  registerPlanCommand(program);
  registerServeCommands(program);
  registerClusterCommands(program);
  registerRunCommands(program);
  registerWorkerCommand(program);
  registerReportCommand(program);
  registerSpotPricesCommand(program);
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
    if (err instanceof CommanderError) return err.exitCode;
    if (err instanceof UsageError) {
      process.stderr.write(`gantry: ${err.message}\n`);
      return 2;
    }
    if (err instanceof PolicyError) {
      process.stderr.write(`gantry: ${err instanceof ValidationError ? `\n${err.message}` : err.message}\n`);
      return 1;
    }
    throw err;
  }
}
