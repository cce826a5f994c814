/**
 * Leadership between broker processes: one key in the store (`broker.leader`) holds the leader's id and
 * an expiry time, renewed by compare-and-set. JetStream on nats-server 2.9 ignores per-key TTLs, so the
 * expiry lives in the value; a standby takes over by compare-and-set once it has passed.
 *
 * A leader that could not renew in time (the store had no JetStream leader for a while) stops serving;
 * when it wins again and the key is still at the revision it wrote last, nobody led in between, so
 * it is told it {@link ElectedHow | continues} with the state it holds instead of loading it again.
 */
import { decodeJson, encodeJson, StoreConflictError, type Store } from '../protocol/index.ts';

const KEY = 'broker.leader';

interface Lease {
  holder: string;
  expiresAt: number;
}

/**
 * How leadership was won: `continued` when this broker led last and nobody wrote the key since (its
 * state in memory is still the latest); `new` otherwise.
 */
export type ElectedHow = 'new' | 'continued';

/** Campaigns for leadership and keeps it; calls back when it is won or lost. */
export class Leadership {
  leading = false;
  /** When a campaign last read the store: a standby that has is ready to take over with fresh state. */
  lastContact: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private revision = 0;
  /** Until when the last successful renewal lets this broker lead. */
  private validUntil = 0;
  private stopped = false;
  /** A broker that resigned does not campaign before this, so that another may take over first. */
  private quietUntil = 0;
  /** The key's revision this broker wrote last while leading (0: it gave leadership up, or never led). */
  private ownRevision = 0;
  /** When the renewal in flight started, and how many were started. */
  private campaignAt: number | undefined;
  private attempts = 0;

  constructor(
    private readonly store: Store,
    private readonly id: string,
    private readonly clock: () => number,
    private readonly ttlMs: number,
    private readonly on: { onElected: (how: ElectedHow) => void; onDeposed: () => void },
  ) {}

  async start(): Promise<void> {
    this.stopped = false;
    await this.campaign();
    // Often enough that a leader whose store comes back is serving again within a fraction of a TTL.
    this.timer = setInterval(() => void this.campaign(), Math.max(50, this.ttlMs / 6));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.ownRevision = 0;
    if (this.timer) clearInterval(this.timer);
    if (this.leading) {
      this.leading = false;
      // Step down at once so a standby need not wait for the expiry.
      try {
        await this.store.update(KEY, encodeJson({ holder: this.id, expiresAt: 0 }), this.revision);
      } catch {
        /* someone else already leads */
      }
    }
  }

  /**
   * Gives leadership up but keeps campaigning (after one TTL, so a standby goes first): for a leader
   * that could not start serving (its state store not answering yet). Unlike {@link stop}, it comes
   * back to lead when no one else does.
   */
  async resign(): Promise<void> {
    this.quietUntil = this.clock() + this.ttlMs;
    this.ownRevision = 0;
    if (!this.leading) return;
    this.leading = false;
    try {
      await this.store.update(KEY, encodeJson({ holder: this.id, expiresAt: 0 }), this.revision);
    } catch {
      /* the store does not answer, or someone else already leads: the lease expires by itself */
    }
  }

  private async campaign(): Promise<void> {
    // A renewal that hangs (the store does not answer) must not keep this broker serving past its lease.
    if (this.leading && this.clock() >= this.validUntil) this.lose();
    if (this.stopped || this.clock() < this.quietUntil) return;
    // One renewal at a time; one that hangs (asked while NATS was down, answered never) is given up
    // after half a TTL, and what it comes back with is ignored.
    if (this.campaignAt !== undefined && this.clock() - this.campaignAt < this.ttlMs / 2) return;
    const attempt = ++this.attempts;
    this.campaignAt = this.clock();
    try {
      await this.renew(attempt);
    } finally {
      if (attempt === this.attempts) this.campaignAt = undefined;
    }
  }

  private async renew(attempt: number): Promise<void> {
    const stale = () => attempt !== this.attempts;
    const expiresAt = this.clock() + this.ttlMs;
    const value = encodeJson({ holder: this.id, expiresAt } satisfies Lease);
    try {
      const current = await this.store.get(KEY);
      if (stale()) return;
      this.lastContact = this.clock();
      // Nobody wrote the key since this broker last renewed it: nobody led in between.
      const continued = current !== undefined && current.revision === this.ownRevision;
      let revision: number;
      if (!current) revision = await this.store.create(KEY, value);
      else {
        const lease = decodeJson(current.value) as Lease;
        if (lease.holder !== this.id && lease.expiresAt > this.clock()) return this.lose();
        revision = await this.store.update(KEY, value, current.revision);
      }
      if (stale()) {
        // Given up on, but it landed: the key holds this broker's lease until `expiresAt` all the same,
        // so a leader on a slow store (every renewal past half a TTL) keeps leading rather than dropping
        // and reloading its state every TTL.
        if (this.leading && revision > this.revision) {
          this.revision = revision;
          this.ownRevision = revision;
          this.validUntil = Math.max(this.validUntil, expiresAt);
        }
        return;
      }
      this.revision = revision;
      this.validUntil = expiresAt;
      if (!this.stopped) this.ownRevision = this.revision;
      if (!this.leading && !this.stopped) {
        this.leading = true;
        this.on.onElected(continued ? 'continued' : 'new');
      }
    } catch (err) {
      if (stale()) return;
      if (err instanceof StoreConflictError) {
        // Lost the race to someone else, or to a renewal of ours given up on that landed late: the key
        // says which.
        const now = await this.store.get(KEY).catch(() => undefined);
        if (now === undefined || (decodeJson(now.value) as Lease).holder !== this.id) return this.lose();
        return;
      }
      // The store is unreachable (NATS restarting): keep leading until our lease would have expired —
      // after that a standby may have taken over, and two leaders must never serve at once.
      if (this.clock() >= this.validUntil) this.lose();
    }
  }

  private lose(): void {
    if (!this.leading) return;
    this.leading = false;
    this.on.onDeposed();
  }
}
