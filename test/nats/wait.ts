/** Small waiting helpers for tests that observe asynchronous delivery. */

/** Polls `predicate` every few milliseconds until it holds; throws `message` after `timeoutMs`. */
export async function until(
  predicate: () => boolean,
  message: string | (() => string),
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms: ${typeof message === 'string' ? message : message()}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
