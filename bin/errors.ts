/** Errors of the command line itself. */

/** A flag or argument the user got wrong; printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
  readonly userFacing = true;
}
