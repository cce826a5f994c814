/**
 * Retry decisions, kept pure: given the error an attempt ended with, the attempt number and the task's
 * policy, what the next attempt asks for and how long to wait first. The caller sleeps and calls.
 */
import { formatMemory, parseMemory } from '../policies/quantities.ts';
import { NonRetriableError, OutOfMemoryError, PolicyRefusedError, RetryAfterError } from './errors.ts';
import type { Override, Resources, RetryPolicy } from './task.ts';

/** The next attempt after a failure: its resources, the wait before it, and why (for the run's events). */
export interface RetryStep {
  resources: Resources;
  delayMs: number;
  why: string;
}

/** Errors that end a call at once, whatever the policy says. */
export function isFinal(err: unknown): boolean {
  return err instanceof NonRetriableError || err instanceof PolicyRefusedError;
}

/**
 * What attempt `attempt` (1 for the first retry) asks for after `err`, or undefined when the call
 * should fail with `err`. Out of memory doubles the memory the failed attempt had and retries at once;
 * `RetryAfterError` waits what it says; anything else backs off exponentially with jitter in
 * [50 %, 100 %] of the delay (`random` in [0, 1)).
 */
export function nextAttempt(
  err: unknown,
  attempt: number,
  policy: Required<RetryPolicy>,
  resources: Resources,
  random: () => number = Math.random,
): RetryStep | undefined {
  if (attempt > policy.attempts || isFinal(err)) return undefined;
  if (err instanceof OutOfMemoryError) {
    const had = err.memoryMiB ?? (resources.memory !== undefined ? parseMemory(resources.memory) : 4096);
    return {
      resources: { ...resources, memory: `${had * 2}Mi` },
      delayMs: 0,
      why: `out of memory with ${formatMemory(had)}; retrying with ${formatMemory(had * 2)}`,
    };
  }
  const name = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  if (err instanceof RetryAfterError)
    return { resources, delayMs: err.delayMs, why: `${name}; retrying after ${err.delayMs} ms` };
  const delay = Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** (attempt - 1));
  const jittered = delay * (0.5 + random() / 2);
  return { resources, delayMs: jittered, why: `${name}; retrying after ${Math.round(jittered)} ms` };
}

/** The resource part of an override (without its retries and timeout). */
export function overrideResources(override: Override | undefined): Resources {
  if (!override) return {};
  const { retries: _r, timeout: _t, ...resources } = override;
  return resources;
}

/**
 * How long to wait before asking again, after the `attempt`-th (from 0) try, for something that comes
 * back by itself within seconds — a broker failing over, a JetStream stream electing its leader: 50 ms,
 * doubling, at most 250 ms. Those answer "no responders" at once while they are away, which costs the
 * server next to nothing, and a longer wait would only add to the time they were away.
 *
 * @example
 * askAgainWaitMs(0); // 50
 * askAgainWaitMs(5); // 250
 */
export function askAgainWaitMs(attempt: number): number {
  return Math.min(50 * 2 ** attempt, 250);
}
