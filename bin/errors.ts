/** Errors of the command line itself, and the one line each operational mistake gets. */

/** A flag or argument the user got wrong; printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
  readonly userFacing = true;
}

/**
 * A mistake in how Gantry is run rather than a bug — a server down, no credentials, a port taken:
 * printed as one line saying what failed, where, and what to do; exit code 1.
 */
export class OperationalError extends Error {
  override name = 'OperationalError';
  readonly userFacing = true;
}

/** Where a NATS connection went, to name it in the error. */
export interface NatsTarget {
  nats: string;
  creds?: string | undefined;
}

const causeCode = (err: Error): string | undefined => {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  }
  return undefined;
};

const NETWORK_WORDS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'timed out',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
};

/**
 * The one line for an error of connecting to NATS or talking over it, or undefined when the error is
 * none of the known operational ones (then it is a bug and keeps its stack trace).
 */
export function natsProblem(err: unknown, at: NatsTarget): OperationalError | undefined {
  if (!(err instanceof Error)) return undefined;
  const where = `NATS at ${at.nats}`;
  const fileCode = (err as { code?: unknown; path?: unknown }).path === at.creds ? causeCode(err) : undefined;
  if (at.creds && fileCode)
    return new OperationalError(
      `cannot read --creds ${at.creds} (${fileCode === 'ENOENT' ? 'no such file' : fileCode}): pass the credentials file \`gantry cluster onboard\` wrote`,
    );
  if (jetStreamNotReady(err))
    return new OperationalError(
      `${jetStreamNotReadyLine(at)}: start the servers that are down, or run this again once they elect one`,
    );
  switch (err.name) {
    case 'ConnectionError':
    case 'TransportClosedError': {
      const code = causeCode(err);
      const why = (code && NETWORK_WORDS[code]) ?? err.message;
      return new OperationalError(
        `cannot reach ${where} (${why}): start nats-server with JetStream there (nats-server -js), or pass --nats <url> of a running one`,
      );
    }
    case 'AuthorizationError':
    case 'UserAuthenticationExpiredError':
      return new OperationalError(
        at.creds
          ? `${where} refused the credentials in ${at.creds} (${err.message.toLowerCase()}): pass --creds of a user the server knows (see gantry cluster onboard)`
          : `${where} needs credentials (${err.message.toLowerCase()}): pass --creds <file> (gantry cluster onboard writes them)`,
      );
    case 'JetStreamNotEnabled':
      return new OperationalError(
        `${where} has no JetStream, where Gantry keeps its state: restart nats-server with -js (or jetstream {} in its config)`,
      );
    case 'NoRespondersError':
      return new OperationalError(
        `no broker answers on ${where}: start one (gantry broker -f <dir> --nats ${at.nats}), or point --nats at the server it uses`,
      );
    case 'TransportTimeoutError':
      return new OperationalError(
        `the broker on ${where} did not answer in time: check that it is running and leading (its log says 'broker started')`,
      );
    case 'PermissionViolationError':
      return new OperationalError(
        `${where} does not allow ${at.creds ? `the credentials in ${at.creds}` : 'this user'} to do that (${err.message}): use the operator's credentials`,
      );
    default:
      if (/^(NKeys|InvalidCredentials)/.test(err.name) || /invalid (seed|nkey|creds)/i.test(err.message))
        return new OperationalError(
          `--creds ${at.creds ?? ''} is not an NKey seed or a .creds file (${err.message}): pass the file \`gantry cluster onboard\` wrote`,
        );
      return undefined;
  }
}

/**
 * Whether `err` says JetStream is there but cannot answer yet: a NATS cluster with no JetStream meta
 * leader (electing one shortly after its servers start, or with fewer than half of them up). Its API
 * requests time out, or are refused as temporarily unavailable (code 10008); a server whose INFO says
 * it runs JetStream and that answers "not enabled" is in the same state.
 */
export function jetStreamNotReady(err: unknown, serverHasJetStream = false): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'TimeoutError') return true;
  if (err.name === 'JetStreamApiError' && (err as { code?: unknown }).code === 10008) return true;
  return err.name === 'JetStreamNotEnabled' && serverHasJetStream;
}

/** The one line for JetStream that does not answer yet ({@link jetStreamNotReady}). */
export function jetStreamNotReadyLine(at: NatsTarget): string {
  return (
    `JetStream on NATS at ${at.nats} does not answer yet (no JetStream meta leader: a NATS cluster elects one ` +
    `shortly after its servers start, and needs more than half of them up)`
  );
}

/** The one line for a server that cannot listen on its port. */
export function listenProblem(
  err: unknown,
  flag: string,
  host: string,
  port: number,
): OperationalError | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = causeCode(err);
  if (code === 'EADDRINUSE')
    return new OperationalError(
      `port ${port} on ${host} is already in use: choose another ${flag} (or stop what listens there)`,
    );
  if (code === 'EACCES')
    return new OperationalError(`not allowed to listen on ${host}:${port}: choose a ${flag} above 1023`);
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
    return new OperationalError(`${host} is not an address of this machine: pass another --metrics-host`);
  return undefined;
}

/** The one line for a failed call to a cloud API (EC2), or undefined when it is none of the known ones. */
export function cloudProblem(err: unknown, endpoint: string): OperationalError | undefined {
  if (!(err instanceof Error)) return undefined;
  if (err.name === 'CredentialsProviderError')
    return new OperationalError(
      'no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where an instance role applies',
    );
  const code = causeCode(err);
  if (code && NETWORK_WORDS[code])
    return new OperationalError(
      `cannot reach EC2 at ${endpoint} (${NETWORK_WORDS[code]}): check --ec2-endpoint and the network`,
    );
  if (
    /^(AuthFailure|UnauthorizedOperation|InvalidClientTokenId|SignatureDoesNotMatch|ExpiredToken)/.test(
      err.name,
    )
  )
    return new OperationalError(
      `EC2 at ${endpoint} refused the AWS credentials (${err.name}: ${err.message}): check them, and that they may call ec2:DescribeSpotPriceHistory`,
    );
  return undefined;
}
