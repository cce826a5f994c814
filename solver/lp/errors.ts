/** Errors raised by the LP backend layer. Engine failures are *returned* as `status: 'error'`; these are thrown. */

/** Base class of every error from `solver/lp/`. */
export class LpError extends Error {
  override name = 'LpError';
}

/** Where in a model a problem was found. */
export interface LpModelLocation {
  kind: 'variable' | 'constraint';
  /** Index of the variable or constraint. */
  index: number;
  /** Caller's name of that variable or constraint. */
  name: string;
  /** For a bad term of a constraint: its position inside `constraint.terms`. */
  term?: number;
}

/**
 * The model itself is malformed: a term points at a variable that does not exist, or a cost, coefficient
 * or bound is NaN. This is a bug in the code that built the model, so it is thrown rather than returned.
 */
export class LpModelError extends LpError {
  override name = 'LpModelError';
  readonly location: LpModelLocation;
  constructor(message: string, location: LpModelLocation, options?: ErrorOptions) {
    const term = location.term === undefined ? '' : ` term ${location.term}`;
    super(`${location.kind} ${location.index} '${location.name}'${term}: ${message}`, options);
    this.location = location;
  }
}

/** An engine could not be loaded or used at all (e.g. the HiGHS WebAssembly failed to instantiate). */
export class LpBackendError extends LpError {
  override name = 'LpBackendError';
  /** `LpBackend.name` of the engine concerned. */
  readonly backend: string;
  constructor(backend: string, message: string, options?: ErrorOptions) {
    super(`${backend}: ${message}`, options);
    this.backend = backend;
  }
}

/** `chooseBackend` was given no backend at all. */
export class LpNoBackendError extends LpError {
  override name = 'LpNoBackendError';
  /** Size of the model that needed one. */
  readonly variables: number;
  constructor(variables: number, options?: ErrorOptions) {
    super(`no LP backend available for a model of ${variables} variables`, options);
    this.variables = variables;
  }
}
