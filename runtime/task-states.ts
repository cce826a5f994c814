/**
 * Following task states: the broker publishes a run's task states many per message on the run's
 * states subject; one subscription per run serves every call of the run that follows its state, and
 * only the states of followed requests are checked.
 */
import {
  decodeJson,
  subjects,
  type Subscription,
  taskStateMsg,
  type TaskStateMsg,
  type Transport,
} from '../protocol/index.ts';

/** A run's states subject and the calls following it. */
interface Followed {
  sub: Subscription;
  handlers: Map<string, (s: TaskStateMsg) => void>;
}

/** The task states followed by one runtime, one subscription per run. */
export class TaskStates {
  readonly #subjects = new Map<string, Followed>();

  constructor(private readonly transport: Transport) {}

  /**
   * Calls `onState` with each state the broker publishes for `requestId` (of `runId`, in `team`) until
   * the returned function is called.
   *
   * @example
   * const stop = states.follow('ml', 'run-1', 'run-1-0', (s) => console.log(s.state));
   */
  follow(
    team: string,
    runId: string | undefined,
    requestId: string,
    onState: (s: TaskStateMsg) => void,
  ): () => void {
    const subject = subjects.taskStates(team, runId);
    let f = this.#subjects.get(subject);
    if (!f) {
      const handlers = new Map<string, (s: TaskStateMsg) => void>();
      const sub = this.transport.subscribe(subject, (msg) => deliver(msg.data, handlers));
      this.#subjects.set(subject, (f = { sub, handlers }));
    }
    f.handlers.set(requestId, onState);
    return () => {
      if (f.handlers.get(requestId) !== onState) return;
      f.handlers.delete(requestId);
      if (f.handlers.size > 0) return;
      f.sub.unsubscribe();
      this.#subjects.delete(subject);
    };
  }
}

/** Hands each state of a `taskStatesMsg` to its request's handler; a state nobody follows is not checked. */
function deliver(data: Uint8Array, handlers: ReadonlyMap<string, (s: TaskStateMsg) => void>): void {
  let body: unknown;
  try {
    body = decodeJson(data);
  } catch {
    return;
  }
  const states = (body as { states?: unknown } | null)?.states;
  if (!Array.isArray(states)) return;
  for (const item of states as unknown[]) {
    const handler = handlers.get((item as { requestId?: unknown } | null)?.requestId as string);
    if (!handler) continue;
    const p = taskStateMsg.safeParse(item);
    if (p.success) handler(p.data);
  }
}
