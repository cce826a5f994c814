/**
 * Messages that many go out together: batch answers and task states are gathered per subject while the
 * current work runs (a cycle's announcements, a batch of agent events) and published as a few messages
 * `{"<field>":[…]}` once it is done, instead of one message each.
 */
import type { Transport } from '../protocol/index.ts';

const encoder = new TextEncoder();

/** JSON items gathered per subject, published together on the next turn of the event loop (or at `flush`). */
export class BatchedPublish {
  readonly #pending = new Map<string, string[]>();
  #soon: NodeJS.Immediate | undefined;

  /**
   * @param field the array's name in each message (`results`, `states`)
   * @param max items per message (NATS's default limit is 1 MiB)
   */
  constructor(
    private readonly transport: Transport,
    private readonly field: string,
    private readonly max: number,
  ) {}

  /** Adds one item (its JSON) for `subject`. */
  add(subject: string, json: string): void {
    const list = this.#pending.get(subject);
    if (list) list.push(json);
    else this.#pending.set(subject, [json]);
    this.#soon ??= setImmediate(() => this.flush());
  }

  /** Publishes everything gathered. */
  flush(): void {
    if (this.#soon) clearImmediate(this.#soon);
    this.#soon = undefined;
    for (const [subject, items] of this.#pending)
      for (let i = 0; i < items.length; i += this.max)
        this.transport.publish(
          subject,
          encoder.encode(`{"${this.field}":[${items.slice(i, i + this.max).join(',')}]}`),
        );
    this.#pending.clear();
  }
}
