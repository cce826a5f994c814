/** Errors of the history store: each carries what it is about, and a message that says what to do. */

/** Base of every history error. */
export class HistoryError extends Error {
  override name = 'HistoryError';
}

/**
 * The history database cannot be reached or opened (PostgreSQL down, a PGlite directory another
 * process holds): an operational mistake, printed as one line.
 */
export class HistoryUnavailableError extends HistoryError {
  override name = 'HistoryUnavailableError';
  constructor(
    readonly where: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A query the history cannot answer as asked (an ambiguous hash prefix, a bad window): a usage mistake. */
export class HistoryQueryError extends HistoryError {
  override name = 'HistoryQueryError';
  constructor(
    message: string,
    /** The parameter at fault, as the API names it. */
    readonly field?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The database's schema is newer than this Gantry knows (a newer version migrated it). */
export class SchemaTooNewError extends HistoryError {
  override name = 'SchemaTooNewError';
  constructor(
    readonly found: number,
    readonly known: number,
  ) {
    super(
      `the history database is at schema version ${found}, newer than this Gantry knows (${known}): upgrade Gantry`,
    );
  }
}

/**
 * A batch given as gapless does not continue the source's offset: another process ingests the same
 * source, or the consumer skipped entries. Nothing of the batch was applied.
 */
export class IngestGapError extends HistoryError {
  override name = 'IngestGapError';
  constructor(
    readonly source: string,
    /** The sequence the batch had to start with. */
    readonly expected: number,
    readonly got: number,
  ) {
    super(`${source} log: expected entry ${expected} next, got ${got}; nothing of the batch was applied`);
  }
}
