/**
 * Agents and the broker: registration, heartbeats and capacity, lease ends, launch, scale, stop and cancel.
 */
import { z } from 'zod';
import { id, name } from './fields.ts';
import { leaseMsg, taskState } from './requests.ts';

/** One node as an agent reports it. */
export const nodeMsg = z.strictObject({
  name: z.string().min(1),
  pool: name,
  cpuMilli: z.number().nonnegative(),
  memoryMiB: z.number().nonnegative(),
  gpuCount: z.int().nonnegative(),
  ready: z.boolean(),
  /** The planned id the broker gave this node when it asked for it, if any. */
  plannedId: z.string().optional(),
  capacityType: z.enum(['spot', 'on-demand', 'reserved']),
  /** When the node became ready, by the agent's clock (the cost ledger's node start). */
  readyAt: z.number().optional(),
});

/** agent → broker: registration. */
export const registerMsg = z.strictObject({ cluster: name, agentId: id, version: z.string() });

/** A heartbeat repeats at most this many recent ends (about 80 bytes each). */
export const MAX_FINISHED_IN_HEARTBEAT = 2000;

/**
 * Why an agent ended a lease it could not run, as data: the broker switches on `kind`; `reason` beside
 * it is for people. `unknown-node`: the lease names a node the cluster does not have (it never came up,
 * or went away before the lease arrived); `node-gone`: its node went away; `node-reclaimed`: its spot
 * node was reclaimed; `pool-exhausted`: the planned node it waited for will not come; `cancelled`: the
 * broker cancelled it.
 */
export const leaseEndKind = z.enum([
  'unknown-node',
  'node-gone',
  'node-reclaimed',
  'pool-exhausted',
  'cancelled',
]);

/** A lease end's cause: its kind and the thing it concerns (a node, a pool) or the broker's reason. */
export const leaseEndCause = z.strictObject({ kind: leaseEndKind, detail: z.string().max(500) });

/**
 * On a lease's end: how long its work ran on its cluster's clock, ms (a simulated cluster's time: the
 * work's simulated duration, not the wall clock times the speedup). The ledger charges this.
 */
const ranMs = z.number().nonnegative();

/** agent → broker: capacity. A new `agentId` for a cluster means its agent restarted. */
export const heartbeatMsg = z.strictObject({
  cluster: name,
  agentId: id,
  seq: z.int().nonnegative(),
  nodes: z.array(nodeMsg),
  /** How many leases the agent is launching or running now. */
  activeCount: z.int().nonnegative(),
  /** Leases that ended recently, so an end the broker missed (a restart, a lost message) still counts. */
  finished: z
    .array(
      z.strictObject({
        leaseId: id,
        state: taskState,
        node: z.string().optional(),
        reason: z.string().optional(),
        cause: leaseEndCause.optional(),
        startedAt: z.number().optional(),
        ranMs: ranMs.optional(),
      }),
    )
    .max(MAX_FINISHED_IN_HEARTBEAT)
    .default([]),
});

/** agent → broker: a lease changed state, a node came up or went away, or a pool ran out of capacity. */
export const agentEvent = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('lease'),
    cluster: name,
    leaseId: id,
    state: taskState,
    at: z.number(),
    node: z.string().optional(),
    exitCode: z.int().optional(),
    reason: z.string().optional(),
    cause: leaseEndCause.optional(),
    /** When the work started running (on ends: the running report may have been folded into them). */
    startedAt: z.number().optional(),
    ranMs: ranMs.optional(),
  }),
  z.strictObject({
    type: z.literal('node'),
    cluster: name,
    node: z.string().min(1),
    pool: name,
    state: z.enum(['ready', 'gone', 'preempted']),
    plannedId: z.string().optional(),
    at: z.number(),
  }),
  /** The cloud cannot add nodes to the pool now: plan elsewhere for `retryAfterMs` (relative: clocks differ). */
  z.strictObject({
    type: z.literal('pool'),
    cluster: name,
    pool: name,
    state: z.literal('exhausted'),
    /** Why, as data (see the agents' ExhaustedKind); absent from agents that predate it. */
    kind: z.enum(['max-nodes', 'capacity', 'quota', 'throttled', 'managed', 'error']).optional(),
    reason: z.string().max(2000),
    retryAfterMs: z.number().nonnegative().max(86_400_000),
    /** Planned nodes that will not come. */
    plannedIds: z.array(z.string().min(1)).max(10_000).default([]),
    at: z.number(),
  }),
]);

/** broker → agent: launch leases (a cycle's leases for the cluster, in chunks). */
export const launchMsg = z.strictObject({ leases: z.array(leaseMsg).min(1).max(2000) });

/** agent → broker: events, batched over a few milliseconds. */
export const agentEvents = z.strictObject({ events: z.array(agentEvent).min(1).max(10_000) });

/** broker → agent: scale a pool. */
export const scaleMsg = z.strictObject({
  pool: name,
  /** Planned ids of nodes to add. */
  add: z.array(z.string().min(1)).default([]),
  /** Names of nodes to remove. */
  remove: z.array(z.string().min(1)).default([]),
});

/**
 * broker → agent: the cluster was removed (`gantry cluster remove`). The agent terminates `terminate`
 * (nodes Gantry bought, by name), answers with what it terminated and what it could not, and stops.
 */
export const stopMsg = z.strictObject({
  reason: z.string().max(500),
  terminate: z.array(z.string().min(1)).max(10_000).default([]),
});

/** agent → broker: the answer to {@link stopMsg}. */
export const stopReply = z.strictObject({
  ok: z.literal(true),
  terminated: z.array(z.string()),
  failed: z.array(z.strictObject({ node: z.string(), reason: z.string() })).default([]),
});

/** broker → agent: stop a lease's work. */
export const cancelMsg = z.strictObject({ leaseId: id, reason: z.string() });
