/**
 * Typed task failures. A failure crosses the wire as `{ name, message, data }` (protocol `errorMsg`) and
 * comes back as the same class, so a workflow can `catch (err) { if (err instanceof OutOfMemoryError) … }`
 * around a child task, and the runtime's retry policy can tell an OOM from a preemption.
 */
import type { BrokerFailureKind, ErrorMsg } from '../protocol/index.ts';

/** Base class of every failure a task call can throw. `data` travels with it. */
export class TaskError extends Error {
  override name = 'TaskError';
  /** The task that failed, when known. */
  task?: string;
  /** The execution that failed, when known. */
  execution?: string;
  constructor(
    message: string,
    readonly data: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** The process or pod ran out of memory. Retried with twice the memory, up to the policy's limit. */
export class OutOfMemoryError extends TaskError {
  override name = 'OutOfMemoryError';
  constructor(message = 'the task ran out of memory', data: Record<string, unknown> = {}) {
    super(message, data);
  }
  /** The memory the failed attempt had, in MiB. */
  get memoryMiB(): number | undefined {
    return this.data.memoryMiB as number | undefined;
  }
}

/** The spot node under the task was reclaimed and the broker could not place the task again. */
export class PreemptedError extends TaskError {
  override name = 'PreemptedError';
}

/** A failure that retrying cannot fix (bad input, a bug); never retried. */
export class NonRetriableError extends TaskError {
  override name = 'NonRetriableError';
}

/** Asks the runtime to retry after a delay (a rate limit, a resource not ready yet). */
export class RetryAfterError extends TaskError {
  override name = 'RetryAfterError';
  constructor(message: string, delayMs: number | Record<string, unknown>) {
    super(message, typeof delayMs === 'number' ? { delayMs } : delayMs);
  }
  get delayMs(): number {
    return Number(this.data.delayMs) || 0;
  }
}

/** The task ran longer than its `timeout`. */
export class TimeoutError extends TaskError {
  override name = 'TimeoutError';
}

/**
 * The broker refused the request: it exceeds the team's policy (an override asking for too much, a GPU
 * model the team may not use). `policy` and `field` name what refused it. Never retried.
 */
export class PolicyRefusedError extends TaskError {
  override name = 'PolicyRefusedError';
  get policy(): string | undefined {
    return this.data.policy as string | undefined;
  }
  get field(): string | undefined {
    return this.data.field as string | undefined;
  }
}

/** A task's input or output did not match its schema. Never retried. */
export class ValidationError extends NonRetriableError {
  override name = 'ValidationError';
}

/**
 * The broker stopped the task: it ran past its declared duration and its team's monthly budget had no
 * room to let it run on (or the policy stops overrunning work: `budget.onOverrun: stop`). Never retried.
 */
export class BudgetExceededError extends NonRetriableError {
  override name = 'BudgetExceededError';
}

/**
 * The task waited to be placed longer than its policy's `maxQueueTime` (held by capacity, a quota or a
 * budget), as Flyte's MaxQueuedTimeExceededError. Never retried: it would wait again.
 */
export class MaxQueuedTimeExceededError extends NonRetriableError {
  override name = 'MaxQueuedTimeExceededError';
}

/** The run was cancelled (`gantry run cancel`, Ctrl-C) or abandoned by its driver. Never retried. */
export class RunCancelledError extends NonRetriableError {
  override name = 'RunCancelledError';
}

/** The error class of each way the broker itself ends a request or a lease. */
export const BROKER_FAILURES: Record<
  BrokerFailureKind,
  new (message: string, data: Record<string, unknown>) => TaskError
> = {
  'budget-overrun': BudgetExceededError,
  'max-queue-time': MaxQueuedTimeExceededError,
  'run-cancelled': RunCancelledError,
  'run-abandoned': RunCancelledError,
};

const classes: Record<string, new (message: string, data: Record<string, unknown>) => TaskError> = {
  TaskError,
  OutOfMemoryError,
  PreemptedError,
  NonRetriableError,
  RetryAfterError,
  TimeoutError,
  PolicyRefusedError,
  ValidationError,
  BudgetExceededError,
  MaxQueuedTimeExceededError,
  RunCancelledError,
};

// Error classes a loaded workflow module exports, by name: a failure comes back as its own class.
// Shared by every copy of this module in the process (a test runner may load it twice).
const USER_KEY = Symbol.for('gantry.runtime.errorClasses');
const userClasses: Map<string, abstract new (...args: never[]) => Error> = ((
  globalThis as Record<symbol, unknown>
)[USER_KEY] ??= new Map()) as Map<string, abstract new (...args: never[]) => Error>;

/**
 * Registers the error classes among a module's exports (`export class DataQualityError extends
 * NonRetriableError {}`), so that a failure thrown as one comes back to the caller as that class.
 * The runtime does this for every workflow module it loads.
 */
export function registerErrorClasses(exports: Record<string, unknown>): void {
  for (const value of Object.values(exports))
    if (typeof value === 'function' && value.prototype instanceof Error)
      userClasses.set(value.name, value as abstract new (...args: never[]) => Error);
}

/** The names of an error's classes, its own first, up to (not including) `Error`. */
function classChain(err: Error): string[] {
  const chain: string[] = [];
  for (
    let p = Object.getPrototypeOf(err) as object | null;
    p && p !== Error.prototype;
    p = Object.getPrototypeOf(p)
  )
    chain.push((p.constructor as { name?: string }).name || 'Error');
  return chain.slice(0, 20);
}

/** Turns anything a task threw into its wire form; plain errors keep their name and message. */
export function toErrorMsg(err: unknown): ErrorMsg {
  if (err instanceof Error) {
    const data = err instanceof TaskError ? plainData(err.data) : undefined;
    const chain = classChain(err);
    return {
      name: err.name || 'Error',
      message: err.message.slice(0, 100_000),
      ...(data && Object.keys(data).length > 0 ? { data } : {}),
      ...(chain.length > 1 || (chain[0] !== undefined && chain[0] !== err.name) ? { classes: chain } : {}),
      ...(err.stack ? { stack: err.stack.slice(0, 100_000) } : {}),
    };
  }
  return { name: 'Error', message: String(err).slice(0, 100_000) };
}

/**
 * Turns a wire error back into its class: a class a loaded workflow module exports (see
 * {@link registerErrorClasses}), else the nearest runtime class it extends (so a user's
 * `DataQualityError extends NonRetriableError` is never retried, exported or not). Names the runtime
 * does not know (a user's `TypeError`, `MyError`) become a `TaskError` that keeps the original name,
 * message and remote stack.
 */
export function fromErrorMsg(msg: ErrorMsg, context: { task?: string; execution?: string } = {}): TaskError {
  const names = [msg.name, ...(msg.classes ?? [])];
  const own = userClasses.get(msg.name) ?? userClasses.get(msg.classes?.[0] ?? '');
  const base = names.map((n) => classes[n]).find((c) => c !== undefined) ?? TaskError;
  let err: TaskError;
  if (own && own.prototype instanceof TaskError) {
    // A user's constructor may take other arguments: the instance is built without calling it.
    err = Object.create(own.prototype as object) as TaskError;
    Object.defineProperty(err, 'data', { value: msg.data ?? {}, enumerable: true });
    err.message = msg.message;
    err.name = msg.name;
  } else err = new base(msg.message, msg.data ?? {});
  if (!(msg.name in classes)) err.name = msg.name;
  if (msg.stack)
    err.stack = `${err.name}: ${msg.message}\n    (remote) ${msg.stack.split('\n').slice(1).join('\n')}`;
  if (context.task) err.task = context.task;
  if (context.execution) err.execution = context.execution;
  return err;
}

function plainData(data: Record<string, unknown>): Record<string, unknown> {
  try {
    return JSON.parse(JSON.stringify(data)) as Record<string, unknown>;
  } catch {
    return {};
  }
}
