/** Errors of the console: each says what to do. */

/** Base of every console error. */
export class ConsoleError extends Error {
  override name = 'ConsoleError';
}

/** The console cannot start as configured (no token beyond loopback, a token too short). */
export class ConsoleConfigError extends ConsoleError {
  override name = 'ConsoleConfigError';
}

/** The console's pages are not built (a clone without `npm ci`, or the build failed). */
export class ConsoleNotBuiltError extends ConsoleError {
  override name = 'ConsoleNotBuiltError';
  constructor(
    readonly dir: string,
    options?: ErrorOptions,
  ) {
    super(
      `the console's pages are not built in ${dir}: run npm run console:build (npm ci builds them)`,
      options,
    );
  }
}
