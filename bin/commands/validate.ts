/**
 * `gantry validate -f <file|dir>...`: checks YAML documents and prints one line per document, or every
 * problem as `file:line:col  path  message` with exit code 1.
 */
import type { Command } from 'commander';
import { formatProblem, summarizeDoc, validatePaths } from '../../policies/index.ts';

/** Adds `gantry validate` to the program. */
export function registerValidateCommand(program: Command): void {
  program
    .command('validate')
    .description('Check Cluster, ResourcePolicy, ResourceProfile, PriceCatalog and Workload documents')
    .requiredOption('-f, --file <path...>', 'YAML files or directories (read recursively)')
    .option('-q, --quiet', 'print problems only')
    .action((opts: { file: string[]; quiet?: boolean }) => {
      const result = validatePaths(opts.file);
      for (const w of result.warnings) process.stderr.write(`warning: ${formatProblem(w)}\n`);
      if (result.problems.length > 0) {
        for (const p of result.problems) process.stdout.write(`${formatProblem(p)}\n`);
        const n = result.problems.length;
        process.stderr.write(`\n${n} problem${n === 1 ? '' : 's'} in ${result.files.length} file(s)\n`);
        process.exitCode = 1;
        return;
      }
      if (!opts.quiet) for (const doc of result.docs) process.stdout.write(`${summarizeDoc(doc)}\n`);
      const pools = result.platform.pools.length;
      process.stdout.write(
        `ok: ${result.docs.length} documents in ${result.files.length} files, ${pools} pools\n`,
      );
    });
}
