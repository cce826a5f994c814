/**
 * Validation of a set of files as a whole: every document against its schema, then every cross-document
 * rule. This is what `gantry validate` runs and what every command that reads YAML runs first.
 */
import { loadBuiltinCatalog, type PriceCatalog } from './catalog/catalog.ts';
import { ValidationError, type Problem } from './errors.ts';
import { loadDocuments, type LoadedDoc } from './load.ts';
import { buildPlatform, type Platform } from './platform.ts';

/** The outcome of validating files: documents, the resolved platform, and every problem. */
export interface Validation {
  files: string[];
  docs: LoadedDoc[];
  platform: Platform;
  problems: Problem[];
  /** What is worth saying but does not stop anything: a file with no documents beside files with some. */
  warnings: Problem[];
}

const NO_DOCUMENTS = 'no documents: the file is empty or has only comments';

/**
 * Loads and checks the given files and directories. Never throws for bad input: problems are returned.
 *
 * @example
 * const { problems, platform } = validatePaths(['examples/']);
 * if (problems.length === 0) console.log(platform.pools.length, 'pools');
 */
export function validatePaths(
  paths: readonly string[],
  catalog: PriceCatalog = loadBuiltinCatalog(),
): Validation {
  const loaded = loadDocuments(paths);
  const { platform, problems } = buildPlatform(loaded.docs, catalog);
  // A file with nothing in it is a mistake when it is all there is (kubectl: "no objects passed to
  // apply"); beside other files it may be a placeholder, and is only worth a warning.
  const empty = loaded.empty.map((file): Problem => ({
    file,
    line: 0,
    col: 0,
    path: '',
    message: NO_DOCUMENTS,
  }));
  const nothing = loaded.docs.length === 0;
  const all = [...loaded.problems, ...problems, ...(nothing ? empty : [])].sort(
    (a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col,
  );
  return {
    files: loaded.files,
    docs: loaded.docs,
    platform,
    problems: all,
    warnings: nothing ? [] : empty,
  };
}

/**
 * Like {@link validatePaths}, but throws a {@link ValidationError} listing every problem, for commands
 * that cannot go on with a broken platform.
 */
export function loadPlatform(paths: readonly string[], catalog?: PriceCatalog): Validation {
  const result = validatePaths(paths, catalog);
  if (result.problems.length > 0) throw new ValidationError(result.problems);
  return result;
}

/** One line per document for a successful validation: `Cluster aws-use1  4 pools  (file)`. */
export function summarizeDoc(doc: LoadedDoc): string {
  const v = doc.value;
  let detail = '';
  switch (v.kind) {
    case 'Cluster':
      detail = `${v.spec.provider} ${v.spec.region ?? ''}, ${v.spec.pools.length} pool${v.spec.pools.length === 1 ? '' : 's'}`;
      break;
    case 'ResourcePolicy':
      detail = `teams ${v.spec.teams.join(', ')}, spot ${v.spec.spot}, ${v.spec.quotas.length} quotas`;
      break;
    case 'ResourceProfile':
      detail = v.spec.description ?? '';
      break;
    case 'PriceCatalog':
      detail = `${v.spec.entries.length} price entries`;
      break;
    case 'Workload':
      detail = `${v.spec.groups.length} groups, ${v.spec.groups.reduce((n, g) => n + g.count, 0)} tasks`;
      break;
  }
  return `${doc.kind.padEnd(15)} ${doc.name.padEnd(16)} ${detail.trim()}  (${doc.file})`;
}
