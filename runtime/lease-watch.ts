/**
 * Deadlines for leased calls. Each call the runtime follows has a deadline, pushed back whenever it
 * hears of its lease (a task state) and, past it, renewed by the broker: the runtime asks where the
 * overdue calls stand (protocol/lease-status.ts) and the broker answers with each lease and until when
 * its cluster's heartbeats keep it alive. So a call whose state or result went missing while NATS was
 * restarting, or while a broker failed over, learns where it stands within a heartbeat or two instead
 * of waiting forever; after a reconnection every call asks at once.
 */
import {
  encodeJson,
  leaseStatusReply,
  leaseStatusSubjects,
  MAX_STATUS_REQUESTS,
  parseMessage,
  type RequestStatus,
  type ResultMsg,
  type Transport,
} from '../protocol/index.ts';

/** Where results are kept durably (a JetStream stream per team over NATS), to read one back. */
export interface ResultLookup {
  /** Makes sure the team's results are kept (creates its stream when missing); before its first call. */
  prepare(team: string): Promise<void>;
  /** The result `cluster` published for `execution`, when it is kept. */
  find(team: string, execution: string, cluster: string): Promise<ResultMsg | undefined>;
}

/** A followed call: tell it when the call heard of its lease; stop when the call ended. */
export interface Followed {
  heard(): void;
  stop(): void;
}

/** Options of {@link LeaseWatch}. */
export interface LeaseWatchOptions {
  /** Set inside a cluster's task host: ask through the cluster's agent subject. */
  cluster?: string | undefined;
  clock?: () => number;
  /** How often overdue calls are looked for. Default 250 ms. */
  scanMs?: number;
}

interface Entry {
  team: string;
  requestId: string;
  deadline: number;
  asking: boolean;
  onStatus: (s: RequestStatus) => void;
}

/** Follows leased calls' deadlines and asks the broker about the overdue ones. */
export class LeaseWatch {
  readonly #t: Transport;
  readonly #opts: LeaseWatchOptions;
  readonly #clock: () => number;
  readonly #calls = new Map<string, Entry>();
  #timer: NodeJS.Timeout | undefined;
  /** The agents' heartbeat interval as the broker last said; calls are renewed in multiples of it. */
  #renewMs = 1000;

  constructor(transport: Transport, opts: LeaseWatchOptions = {}) {
    this.#t = transport;
    this.#opts = opts;
    this.#clock = opts.clock ?? Date.now;
    // After a reconnection, states and results may have been missed: every call asks now.
    transport.onEvent((e) => {
      if (e !== 'reconnected') return;
      for (const c of this.#calls.values()) c.deadline = 0;
    });
  }

  /** Follows `requestId` of `team`; `onStatus` gets the broker's answer each time the call is overdue. */
  follow(team: string, requestId: string, onStatus: (s: RequestStatus) => void): Followed {
    const entry: Entry = { team, requestId, deadline: this.#after(2), asking: false, onStatus };
    this.#calls.set(requestId, entry);
    this.#timer ??= setInterval(() => this.#scan(), this.#opts.scanMs ?? 250);
    this.#timer.unref?.();
    return {
      heard: () => {
        entry.deadline = Math.max(entry.deadline, this.#after(2));
      },
      stop: () => {
        if (this.#calls.get(requestId) === entry) this.#calls.delete(requestId);
        if (this.#calls.size === 0 && this.#timer) {
          clearInterval(this.#timer);
          this.#timer = undefined;
        }
      },
    };
  }

  #after(heartbeats: number): number {
    return this.#clock() + heartbeats * this.#renewMs;
  }

  #scan(): void {
    const now = this.#clock();
    const byTeam = new Map<string, Entry[]>();
    for (const c of this.#calls.values()) {
      if (c.asking || c.deadline > now) continue;
      const list = byTeam.get(c.team);
      if (list) list.push(c);
      else byTeam.set(c.team, [c]);
    }
    for (const [team, entries] of byTeam)
      for (let i = 0; i < entries.length; i += MAX_STATUS_REQUESTS)
        void this.#ask(team, entries.slice(i, i + MAX_STATUS_REQUESTS));
  }

  async #ask(team: string, entries: Entry[]): Promise<void> {
    for (const e of entries) e.asking = true;
    const subject =
      this.#opts.cluster === undefined
        ? leaseStatusSubjects.team(team)
        : leaseStatusSubjects.agent(this.#opts.cluster);
    try {
      const reply = await this.#t.request(
        subject,
        encodeJson({ requestIds: entries.map((e) => e.requestId) }),
        { timeoutMs: Math.max(1000, 2 * this.#renewMs), answeredAtOnce: true },
      );
      const p = parseMessage(leaseStatusReply, reply.data);
      if (!p.ok) throw new Error(p.error.message);
      this.#renewMs = p.value.renewMs;
      const now = this.#clock();
      const byId = new Map(p.value.states.map((s) => [s.requestId, s]));
      for (const e of entries) {
        const s = byId.get(e.requestId);
        if (!s) continue;
        // The lease holds until its cluster's heartbeats say otherwise (in the broker's clock, turned
        // into ours); without a lease (pending, ended, unknown), ask again after two heartbeats.
        const holds = s.renewedUntil === undefined ? 0 : s.renewedUntil - p.value.at;
        e.deadline = now + Math.max(holds, 2 * this.#renewMs);
        e.onStatus(s);
      }
    } catch {
      // No broker answered (restarting, failing over): ask again after a heartbeat.
      const next = this.#after(1);
      for (const e of entries) e.deadline = next;
    } finally {
      for (const e of entries) e.asking = false;
    }
  }
}
