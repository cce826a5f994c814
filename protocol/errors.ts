/** Errors of the transport and store layer. */

/** Base class of every error from `protocol/`. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

/** A request got no reply in time. */
export class TransportTimeoutError extends ProtocolError {
  override name = 'TransportTimeoutError';
  constructor(
    readonly subject: string,
    readonly timeoutMs: number,
    options?: ErrorOptions,
  ) {
    super(`no reply on ${subject} within ${timeoutMs} ms`, options);
  }
}

/**
 * The connection to NATS dropped while a request that is answered at once waited for its reply: the
 * reply went to a connection that is gone, so waiting out the timeout would be waiting for nothing. A
 * timeout, so that callers which ask again after one ask again at once, on the next connection.
 */
export class ReplyLostError extends TransportTimeoutError {
  override name = 'ReplyLostError';
  constructor(subject: string, timeoutMs: number, options?: ErrorOptions) {
    super(subject, timeoutMs, options);
    this.message = `the connection dropped while waiting for a reply on ${subject}; ask again`;
  }
}

/** Nobody subscribes to the subject a request went to. */
export class NoRespondersError extends ProtocolError {
  override name = 'NoRespondersError';
  constructor(
    readonly subject: string,
    options?: ErrorOptions,
  ) {
    super(`no one is listening on ${subject}`, options);
  }
}

/** The transport is closed. */
export class TransportClosedError extends ProtocolError {
  override name = 'TransportClosedError';
}

/** A compare-and-set failed: the key exists (create) or is at another revision (update). */
export class StoreConflictError extends ProtocolError {
  override name = 'StoreConflictError';
  constructor(
    readonly key: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A key that is not made of dot-separated `[-_=a-zA-Z0-9]` tokens. */
export class BadKeyError extends ProtocolError {
  override name = 'BadKeyError';
  constructor(
    readonly key: string,
    readonly reason = 'not dot-separated [-_=a-zA-Z0-9] tokens',
    options?: ErrorOptions,
  ) {
    super(`bad key ${JSON.stringify(key)}: ${reason}`, options);
  }
}

/** A subject that NATS would refuse: empty tokens, whitespace, or wildcards where none are allowed. */
export class BadSubjectError extends ProtocolError {
  override name = 'BadSubjectError';
  constructor(
    readonly subject: string,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`bad subject ${JSON.stringify(subject)}: ${reason}`, options);
  }
}

/** The store was closed; open it again to use it. */
export class StoreClosedError extends ProtocolError {
  override name = 'StoreClosedError';
  constructor(
    readonly kind: string,
    options?: ErrorOptions,
  ) {
    super(`the ${kind} store is closed`, options);
  }
}

/** Another live process holds the local store's directory. */
export class StoreLockedError extends ProtocolError {
  override name = 'StoreLockedError';
  constructor(
    readonly dir: string,
    readonly pid: number,
    options?: ErrorOptions,
  ) {
    super(`store directory ${dir} is locked by process ${pid} (lock file ${dir}/LOCK)`, options);
  }
}

/** A local store file has a damaged record that is not the torn last line of a crash. */
export class StoreCorruptError extends ProtocolError {
  override name = 'StoreCorruptError';
  constructor(
    readonly path: string,
    readonly line: number,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(`${path}:${line}: ${reason}`, options);
  }
}
