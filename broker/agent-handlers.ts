/**
 * What the broker does with its agents' messages — registrations, heartbeats, lease and node events —
 * and the health check that loses the work of clusters gone silent and sends unacknowledged launches
 * again.
 */
import {
  encodeJson,
  type LeaseEndCause,
  type Msg,
  parseAgentEvents,
  parseHeartbeat,
  parseMessage,
  registerMsg,
  subjects,
  type TaskState,
} from '../protocol/index.ts';
import { append, type BrokerContext } from './context.ts';
import type { Dispatch } from './dispatch.ts';
import { stopGangPeers } from './gangs.ts';

/** A lease's state as an agent reports it (a lease event or a heartbeat's finished entry). */
interface LeaseReport {
  leaseId: string;
  state: TaskState;
  node?: string | undefined;
  reason?: string | undefined;
  cause?: LeaseEndCause | undefined;
  startedAt?: number | undefined;
  ranMs?: number | undefined;
}

/** A launch not acknowledged this long after it was sent is sent again. */
const RESEND_MS = 3000;

/** A node asked for that has not appeared after this long is no longer counted on. */
const PLANNED_MAX_AGE_MS = 180_000;

/** The agent-facing handlers of a broker; see {@link createAgentHandlers}. */
export interface AgentHandlers {
  onRegister(msg: Msg): void;
  onHeartbeat(msg: Msg): void;
  onEvents(msg: Msg): void;
  /** The periodic health check (every half heartbeat). */
  tick(): void;
}

/** Handlers over the context; `schedule` starts a cycle when one is due. */
export function createAgentHandlers(
  ctx: BrokerContext,
  deps: { schedule(): void } & Pick<Dispatch, 'dispatch' | 'publishState'>,
): AgentHandlers {
  const {
    transport,
    state,
    metrics,
    log,
    clock,
    inventory,
    nodeLedger,
    writer,
    ledgerTime,
    heartbeatMs,
    id,
  } = ctx;
  const { schedule, dispatch, publishState } = deps;
  const bad = ctx.bad;

  function onHeartbeat(msg: Msg): void {
    const cluster = clusterOf(msg);
    const parsed = parseHeartbeat(msg.data);
    if (!parsed.ok) return bad(msg, msg.subject, parsed.error);
    if (parsed.value.cluster !== cluster)
      return bad(msg, msg.subject, {
        code: 'unauthorised',
        message: `heartbeat for ${parsed.value.cluster} on ${cluster}'s subject`,
        field: 'cluster',
      });
    const wasHealthy = inventory.clusters.get(cluster)?.healthy;
    const previousAgent = inventory.clusters.get(cluster)?.agentId;
    const c = inventory.heartbeat(parsed.value, clock());
    if (!c)
      return bad(msg, msg.subject, {
        code: 'unknown-cluster',
        message: `cluster ${cluster} is not onboarded`,
        field: 'cluster',
      });
    for (const e of nodeLedger.heartbeat(cluster, parsed.value.nodes, ledgerTime(clock()))) writer.event(e);
    metrics.clusterHealthy.set({ cluster }, 1);
    // Ends the broker missed (it restarted, or a message was lost while NATS restarted).
    let changed = false;
    for (const f of parsed.value.finished) changed = applyLeaseState(cluster, f) || changed;
    // A new agent id: the agent restarted and knows nothing of what its predecessor ran.
    if (previousAgent !== undefined && previousAgent !== parsed.value.agentId) {
      for (const l of state.activeOn(cluster)) {
        if (l.state === 'launching' || l.state === 'running') lose(l.leaseId, 'the agent restarted');
      }
    }
    if (changed) flushSoon();
    if (!wasHealthy || state.held.size > 0) {
      state.release();
      schedule();
    }
  }

  function onEvents(msg: Msg): void {
    const cluster = clusterOf(msg);
    const parsed = parseAgentEvents(msg.data);
    if (!parsed.ok) return bad(msg, msg.subject, parsed.error);
    let changed = false;
    for (const ev of parsed.value.events) {
      if (ev.cluster !== cluster) {
        bad(msg, msg.subject, {
          code: 'unauthorised',
          message: `event for ${ev.cluster} on ${cluster}'s subject`,
          field: 'events.cluster',
        });
        continue;
      }
      if (ev.type === 'node') {
        if (ev.state !== 'ready') {
          inventory.clusters.get(cluster)?.nodes.delete(ev.node);
          // The agent's time of the end: a preempted task's end is stamped the same.
          for (const e of nodeLedger.end(cluster, ev.node, ev.state, ledgerTime(Math.min(clock(), ev.at))))
            writer.event(e);
        }
        state.release();
        schedule();
        continue;
      }
      if (ev.type === 'pool') {
        log.warn(
          { cluster, pool: ev.pool, reason: ev.reason, retryAfterMs: ev.retryAfterMs },
          'pool exhausted; planning elsewhere',
        );
        inventory.exhaust(cluster, ev.pool, ev.plannedIds, clock() + ev.retryAfterMs, ev.reason);
        state.release();
        schedule();
        continue;
      }
      const lease = state.leases.get(ev.leaseId);
      if (!lease || lease.cluster !== cluster) {
        bad(msg, msg.subject, {
          code: 'unknown-lease',
          message: `no lease ${ev.leaseId} on ${cluster}`,
          field: 'events.leaseId',
        });
        continue;
      }
      changed = applyLeaseState(cluster, ev) || changed;
    }
    if (changed) flushSoon();
  }

  /** Applies a lease state from an agent; true when it changed something. */
  function applyLeaseState(cluster: string, end: LeaseReport): boolean {
    const { leaseId, state: s, node, reason, startedAt, ranMs } = end;
    const lease = state.leases.get(leaseId);
    if (!lease || lease.cluster !== cluster) return false;
    switch (end.cause?.kind) {
      // A launch on a node that never came up: stop counting on that node.
      case 'unknown-node':
        inventory.clusters.get(cluster)?.planned.delete(lease.node);
        break;
      // Nodes going away and pools running out reach the inventory as node and pool events.
      default:
        break;
    }
    const r = state.transition(leaseId, s, { node, reason, startedAt, ranMs });
    if (!r) return false;
    // The requester heard `placed` in the reply; `launching` is the agent's business.
    if (s !== 'launching') publishState(r.requestId, leaseId, s, reason, node);
    stopGangPeers(ctx, publishState, lease, s, reason);
    if (s === 'succeeded' || s === 'failed' || s === 'preempted' || s === 'lost') {
      state.release();
      schedule();
    }
    return true;
  }

  function lose(leaseId: string, reason: string): void {
    const lease = state.leases.get(leaseId);
    // The agent must not start it late, now that it will be placed again.
    if (lease) transport.publish(subjects.cancel(lease.cluster), encodeJson({ leaseId, reason }));
    log.warn({ leaseId, reason, state: lease?.state }, 'lease lost');
    const r = state.transition(leaseId, 'lost', { reason });
    if (r) publishState(r.requestId, leaseId, 'lost', reason);
    if (r && lease) stopGangPeers(ctx, publishState, lease, 'lost', reason);
    flushSoon();
    schedule();
  }

  let flushTimer: NodeJS.Timeout | undefined;
  function flushSoon(): void {
    flushTimer ??= setTimeout(() => {
      flushTimer = undefined;
      writer.flush().catch((err: Error) => {
        log.warn({ err: err.message }, 'state write failed; retrying');
        flushSoon();
      });
    }, 5);
  }

  function onRegister(msg: Msg): void {
    const cluster = clusterOf(msg);
    const parsed = parseMessage(registerMsg, msg.data);
    if (!parsed.ok) return bad(msg, msg.subject, parsed.error);
    if (parsed.value.cluster !== cluster || !inventory.clusters.has(cluster)) {
      return bad(msg, msg.subject, {
        code: 'unknown-cluster',
        message: `cluster ${parsed.value.cluster} is not onboarded here`,
        field: 'cluster',
      });
    }
    log.info({ cluster, agentId: parsed.value.agentId }, 'agent registered');
    transport.respond(msg, encodeJson({ ok: true, heartbeatMs, brokerId: id }));
    // Leases this agent should run but may not know (the broker restarted before dispatching).
    dispatch(
      cluster,
      state
        .activeOn(cluster)
        .filter((l) => l.state === 'placed')
        .map((l) => l.leaseId),
    );
  }

  transport.onEvent((e) => {
    if (e === 'disconnected' || e === 'reconnecting') ctx.connected = false;
    if (e === 'reconnected') {
      ctx.connected = true;
      // Agents get a fresh grace period from now: their heartbeats could not reach us either.
      for (const c of inventory.clusters.values())
        if (c.lastHeartbeat !== undefined) c.lastHeartbeat = clock();
    }
  });

  /** When the health check last ran: one much later than its interval finds the broker itself stalled. */
  let lastTick: number | undefined;
  function tick(): void {
    const now = clock();
    const stalled = lastTick !== undefined && now - lastTick > heartbeatMs;
    lastTick = now;
    // A broker that did not run for a while (a long cycle, a loaded machine) has not read the heartbeats
    // waiting for it either: agents get a fresh grace period rather than losing their work.
    if (stalled) {
      for (const c of inventory.clusters.values()) if (c.lastHeartbeat !== undefined) c.lastHeartbeat = now;
      return;
    }
    try {
      checkClusters();
    } catch (err) {
      log.error({ err: (err as Error).message }, 'health check failed');
    }
  }

  /** When each launch not yet acknowledged was last sent again. */
  let resentAt = new Map<string, number>();
  function checkClusters(): void {
    const now = clock();
    if (!ctx.connected) return;
    inventory.expirePlanned(now, PLANNED_MAX_AGE_MS);
    for (const c of inventory.checkHealth(now, 1.5 * heartbeatMs, 0.5 * heartbeatMs)) {
      metrics.clusterHealthy.set({ cluster: c.name }, 0);
      for (const l of state.activeOn(c.name)) lose(l.leaseId, `cluster ${c.name} stopped sending heartbeats`);
    }
    // Launches an agent never acknowledged (lost in flight, agent restarting) are sent again, each at
    // most every RESEND_MS: an agent slow to answer (busy launching) is not sent the same launches on
    // every check.
    const again = new Map<string, string[]>();
    const sent = new Map<string, number>();
    for (const l of state.placed()) {
      const last = resentAt.get(l.leaseId) ?? l.placedAt;
      if (now - last < RESEND_MS || !inventory.clusters.get(l.cluster)?.healthy) {
        if (last !== l.placedAt) sent.set(l.leaseId, last);
        continue;
      }
      append(again, l.cluster, l.leaseId);
      sent.set(l.leaseId, now);
    }
    resentAt = sent;
    for (const [cluster, ids] of again) dispatch(cluster, ids);
    if (state.held.size > 0) {
      state.release();
      schedule();
    }
  }

  return { onRegister, onHeartbeat, onEvents, tick };
}

/** The cluster an agent subject belongs to: `gantry.v1.agent.<cluster>.<verb>`. */
function clusterOf(msg: Msg): string {
  return msg.subject.split('.')[3] ?? '';
}
