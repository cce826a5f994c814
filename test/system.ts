/**
 * Test helpers for the running system: a client that sends requests and follows tasks to their end,
 * counting every terminal state so that "exactly once" can be asserted.
 */
import {
  decodeJson,
  encodeJson,
  type RequestReply,
  subjects,
  type TaskStateMsg,
  type Transport,
} from '../protocol/index.ts';

/** Sends requests and records every state the broker publishes for them. */
export class TestClient {
  readonly states = new Map<string, string[]>();
  private readonly waiters = new Map<string, () => void>();

  constructor(private readonly transport: Transport) {
    transport.subscribe(subjects.taskState('*'), (msg) => {
      const s = decodeJson(msg.data) as TaskStateMsg;
      const list = this.states.get(s.requestId) ?? [];
      list.push(s.state);
      this.states.set(s.requestId, list);
      if (s.state === 'succeeded' || s.state === 'failed') this.waiters.get(s.requestId)?.();
    });
  }

  /** Asks for resources for sim work; resolves with the broker's reply. */
  async request(
    requestId: string,
    body: Record<string, unknown> = {},
    timeoutMs = 30_000,
  ): Promise<RequestReply> {
    const msg = {
      requestId,
      team: 'ml',
      resources: { cpu: 2, memory: '4Gi' },
      work: { kind: 'sim', durationMs: 20 },
      ...body,
    };
    const reply = await this.transport.request(subjects.request, encodeJson(msg), { timeoutMs });
    return decodeJson(reply.data) as RequestReply;
  }

  /** Resolves when every request has reached `succeeded` or `failed`, or rejects after `timeoutMs`. */
  async finished(ids: readonly string[], timeoutMs = 30_000): Promise<void> {
    const open = ids.filter((id) => !this.ended(id));
    await Promise.race([
      Promise.all(
        open.map(
          (id) =>
            new Promise<void>((resolve) => (this.ended(id) ? resolve() : this.waiters.set(id, resolve))),
        ),
      ),
      new Promise((_, reject) =>
        setTimeout(
          () =>
            reject(
              new Error(`${ids.filter((id) => !this.ended(id)).length} of ${ids.length} tasks not finished`),
            ),
          timeoutMs,
        ),
      ),
    ]);
  }

  private ended(id: string): boolean {
    const s = this.states.get(id) ?? [];
    return s.includes('succeeded') || s.includes('failed');
  }

  /** How many times each request reached `succeeded`. */
  successes(id: string): number {
    return (this.states.get(id) ?? []).filter((s) => s === 'succeeded').length;
  }
}

/** Polls `check` every 20 ms until it returns true, or throws after `timeoutMs`. */
export async function eventually(
  check: () => boolean,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
