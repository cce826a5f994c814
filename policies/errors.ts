/** Errors raised while reading YAML resource documents, quantities and the price catalog. */

/** Base class of every error from `policies/`. */
export class PolicyError extends Error {
  override name = 'PolicyError';
}

/** A quantity (cpu, memory, GPU, duration) that cannot be read. The message says how to write it. */
export class QuantityError extends PolicyError {
  override name = 'QuantityError';
}

/** One problem found in a document, located as precisely as the source allows. */
export interface Problem {
  /** File the document came from (or a label such as `<stdin>` or `--override`). */
  file: string;
  /** 1-based line and column; 0 when the problem has no position (e.g. a missing file). */
  line: number;
  col: number;
  /** Dotted path to the field, e.g. `spec.pools[1].maxNodes`. Empty for the document as a whole. */
  path: string;
  message: string;
}

/** Formats a problem the way `gantry validate` prints it: `file:line:col  path  message` (no position: `file  path  message`). */
export function formatProblem(p: Problem): string {
  const at = p.line > 0 ? `${p.file}:${p.line}:${p.col}` : p.file;
  return `${at}  ${p.path || '(document)'}  ${p.message}`;
}

/** Documents that did not validate; carries every problem found, not only the first. */
export class ValidationError extends PolicyError {
  override name = 'ValidationError';
  readonly problems: readonly Problem[];
  constructor(problems: readonly Problem[], options?: ErrorOptions) {
    super(problems.map(formatProblem).join('\n'), options);
    this.problems = problems;
  }
}

/** An instance type, region or price the catalog does not have. */
export class CatalogError extends PolicyError {
  override name = 'CatalogError';
}
