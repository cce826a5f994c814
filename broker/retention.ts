/**
 * What a long-running broker forgets, found without a scan: the ids of requests and leases in the order
 * they ended, with when. Pruning takes them off the front while they are older than the retention; at a
 * million requests a walk over all of them every minute was a stall of a tenth of a second or more.
 */

/** Ids in the order they ended (the clock's order), with when each ended. */
export class EndedQueue {
  #ids: string[] = [];
  #at: number[] = [];
  #head = 0;

  /** `id` ended at `at` (not earlier than the ids before it, as the clock goes). */
  push(id: string, at: number): void {
    this.#ids.push(id);
    this.#at.push(at);
  }

  /** Takes the ids that ended before `t` off the front, oldest first. */
  takeBefore(t: number): string[] {
    const start = this.#head;
    while (this.#head < this.#ids.length && this.#at[this.#head]! < t) this.#head++;
    const out = this.#ids.slice(start, this.#head);
    // The front taken is dropped once it is most of the arrays.
    if (this.#head > 1024 && this.#head * 2 > this.#ids.length) {
      this.#ids = this.#ids.slice(this.#head);
      this.#at = this.#at.slice(this.#head);
      this.#head = 0;
    }
    return out;
  }

  get size(): number {
    return this.#ids.length - this.#head;
  }

  clear(): void {
    this.#ids = [];
    this.#at = [];
    this.#head = 0;
  }
}
