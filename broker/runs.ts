/**
 * Runs are owned: a run's driver (`gantry run`, `runWorkflow`) sends a liveness heartbeat on the run's
 * control subject. When a run that sent one goes quiet for longer than the grace period (default
 * {@link RUN_GRACE_MS}), its driver is taken for dead: its pending requests are withdrawn and its running
 * leases stopped, so nobody keeps paying for work nobody waits for. `cancel` (Ctrl-C on `gantry run`,
 * `gantry run cancel <run>`) does the same at once and answers with what it stopped. Either way the run's
 * end goes to the broker's log (a `run` event, abandoned or cancelled), so the history shows it ended
 * even when its driver is not there to say so.
 */
import {
  encodeJson,
  type Msg,
  parseMessage,
  type RunCancelReply,
  runControlMsg,
  TERMINAL,
} from '../protocol/index.ts';
import type { BrokerContext } from './context.ts';
import type { BrokerFailure, Enforcement, PublishState } from './enforcement.ts';

/** A run whose driver sent no heartbeat for this long (wall clock) is abandoned. */
export const RUN_GRACE_MS = 15_000;

/** The run-control side of a broker; see {@link createRunControl}. */
export interface RunControl {
  /** Handles a message on `gantry.v1.team.<team>.run.<run>.control`. */
  onControl(msg: Msg): void;
  /**
   * Withdraws a run's pending requests and stops its leases; says what it stopped. With `team`, only
   * that team's (a runtime cancels its own team's runs; operators any).
   */
  cancel(runId: string, failure: BrokerFailure, team?: string): RunCancelReply;
  /** Abandons runs gone quiet past the grace period (every health tick). */
  tick(): void;
}

/** Run control over the context. `graceMs`: see {@link RUN_GRACE_MS}. */
export function createRunControl(
  ctx: BrokerContext,
  deps: { enforcement: Enforcement; publishState: PublishState; flush: () => void },
  graceMs = RUN_GRACE_MS,
): RunControl {
  const { state, transport, log, clock } = ctx;
  /** Last heartbeat per live run, and the team it runs for (from its control subject). */
  const lastSeen = new Map<string, number>();
  const teamOf = new Map<string, string>();

  function cancel(runId: string, failure: BrokerFailure, team?: string): RunCancelReply {
    const heard = lastSeen.delete(runId);
    const out: RunCancelReply = { ok: true, run: runId, withdrawn: [], stopped: [] };
    let known: { team: string; workflow?: string | undefined } | undefined;
    for (const r of state.requests.values()) {
      if (r.runId !== runId) continue;
      if (team !== undefined && r.team !== team) continue;
      known ??= { team: r.team, workflow: r.workflow };
      if (TERMINAL.has(r.state)) continue;
      const lease = r.leaseId ? state.leases.get(r.leaseId) : undefined;
      if (lease && deps.enforcement.stopLease(lease.leaseId, failure)) {
        out.stopped.push({
          requestId: r.requestId,
          leaseId: lease.leaseId,
          ...(r.taskId ? { task: r.taskId } : {}),
          cluster: lease.cluster,
          node: lease.actualNode ?? lease.node,
        });
        continue;
      }
      if (r.state !== 'pending') continue;
      deps.enforcement.withdraw(r, failure);
      out.withdrawn.push({ requestId: r.requestId, ...(r.taskId ? { task: r.taskId } : {}) });
    }
    if (out.withdrawn.length + out.stopped.length > 0)
      log.warn(
        { runId, kind: failure.kind, withdrawn: out.withdrawn.length, stopped: out.stopped.length },
        'run ended by the broker',
      );
    const runTeam = known?.team ?? team ?? (heard ? teamOf.get(runId) : undefined);
    teamOf.delete(runId);
    // Once: a run already ended (its work done or stopped, its driver gone) is not ended again.
    if (runTeam !== undefined && (heard || out.withdrawn.length + out.stopped.length > 0))
      ctx.writer.event({
        at: clock(),
        kind: 'run',
        id: runId,
        state: failure.kind === 'run-abandoned' ? 'abandoned' : 'cancelled',
        team: runTeam,
        reason: failure.detail,
        ...(known?.workflow ? { request: known.workflow } : {}),
      });
    deps.flush();
    return out;
  }

  return {
    onControl(msg) {
      const [, , , team = '', , runId = ''] = msg.subject.split('.');
      const p = parseMessage(runControlMsg, msg.data);
      if (!p.ok) return ctx.bad(msg, msg.subject, p.error);
      if (p.value.type === 'heartbeat') {
        lastSeen.set(runId, clock());
        teamOf.set(runId, team);
      } else if (p.value.type === 'end') {
        lastSeen.delete(runId);
        teamOf.delete(runId);
      } else {
        const reply = cancel(
          runId,
          {
            kind: 'run-cancelled',
            detail: `run ${runId} was cancelled${p.value.reason ? ` (${p.value.reason})` : ''}`,
          },
          team,
        );
        if (msg.reply) transport.respond(msg, encodeJson(reply));
      }
    },
    cancel,
    tick() {
      if (!ctx.serving || !ctx.connected) return;
      const now = clock();
      for (const [runId, at] of lastSeen) {
        if (now - at <= graceMs) continue;
        cancel(runId, {
          kind: 'run-abandoned',
          detail: `run ${runId}'s driver sent no heartbeat for ${Math.round((now - at) / 1000)} s (grace ${graceMs / 1000} s): its work was stopped`,
        });
      }
    },
  };
}
