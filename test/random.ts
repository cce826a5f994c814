/** Deterministic pseudo-random numbers for tests and benchmarks, so every run sees the same inputs. */

/**
 * mulberry32: a small, fast generator of numbers in [0, 1) from a 32-bit seed.
 *
 * @example
 * const rand = mulberry32(42);
 * rand(); // the same sequence every time
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
