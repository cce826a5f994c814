/**
 * Requests, leases and task states: what a team's runtime and the broker say to each other about one task.
 */
import { z } from 'zod';
import { id, name, reasonOf, team } from './fields.ts';

/** Resources as the runtime writes them (quantity strings or numbers), validated by the broker. */
export const resourcesMsg = z.strictObject({
  profile: z.string().optional(),
  cpu: z.union([z.string(), z.number()]).optional(),
  memory: z.union([z.string(), z.number()]).optional(),
  gpu: z.union([z.string(), z.number(), z.array(z.union([z.string(), z.number()]))]).optional(),
  spot: z.enum(['never', 'allowed', 'preferred', 'required']).optional(),
  duration: z.union([z.string(), z.number()]).optional(),
  /** Members of a gang: the request is one member, `gang` says which. */
  nodes: z.number().optional(),
});

/**
 * A typed value on the wire: inline JSON, or a reference to a content-addressed artifact (values over
 * the runtime's inline limit). `hash` is the sha256 of the value's JSON either way.
 */
export const valueMsg = z.union([
  z.strictObject({ inline: z.unknown(), hash: z.string() }),
  z.strictObject({ ref: z.string().regex(/^sha256:[0-9a-f]{64}$/), bytes: z.int().nonnegative() }),
]);

const modulePath = z.string().min(1).max(4096);

/** What to run once placed. `sim` runs nothing and reports the outcome after `durationMs`. */
export const workSpec = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('sim'),
    durationMs: z.number().nonnegative().max(86_400_000),
    outcome: z.enum(['succeeded', 'failed', 'oom']).default('succeeded'),
  }),
  z.strictObject({
    kind: z.literal('process'),
    command: z.string().min(1),
    args: z.array(z.string()).default([]),
    env: z.record(z.string(), z.string()).default({}),
  }),
  /** One execution of a workflow task: the host loads `module`, runs `task` and publishes the result. */
  z.strictObject({
    kind: z.literal('task'),
    module: modulePath,
    task: z.string().min(1).max(200),
    execution: id,
    run: id,
    team,
    workflow: z.string().max(200).optional(),
    input: valueMsg,
    /** The host stops the execution after this long and reports a TimeoutError. */
    timeoutMs: z.number().positive().optional(),
    /** The runtime's attempt of the call (0 first, 1 for the first retry): the task's `ctx.attempt`. */
    attempt: z.int().nonnegative().max(1000).optional(),
    /** A container or command task's program: on Kubernetes the pod runs `image` (when set). */
    program: z
      .strictObject({
        image: z.string().min(1).max(1000).optional(),
        command: z.string().min(1).max(4096),
        args: z.array(z.string().max(100_000)).max(10_000),
        env: z.record(z.string(), z.string()),
      })
      .optional(),
  }),
  /** A warm worker: loads `module` and serves invocations on `subjects.invoke(pool)` until idle. */
  z.strictObject({
    kind: z.literal('worker'),
    module: modulePath,
    pool: id,
    /** The team whose runtime invokes it: its invocations come on that team's subjects. */
    team,
    idleTtlMs: z.number().positive().max(86_400_000),
    concurrency: z.int().positive().max(10_000).default(1),
  }),
]);

/** runtime → broker: a resource request. Resent with the same `requestId` after a failure: idempotent. */
export const requestMsg = z.strictObject({
  requestId: id,
  team,
  runId: id.optional(),
  taskId: id.optional(),
  /** The workflow the run is of, for cost reports. */
  workflow: z.string().max(200).optional(),
  resources: resourcesMsg.default({}),
  priority: z.int().optional(),
  /** True when the workflow overrode the task's declared resources. */
  override: z.boolean().default(false),
  /**
   * One member of a gang (`resources.nodes` > 1): every member has the same gang id and its own rank;
   * the broker places all of them in one cycle or none.
   */
  gang: z.strictObject({ id, rank: z.int().nonnegative().max(10_000) }).optional(),
  work: workSpec,
});

/**
 * Kinds of reason the solver gives for a choice or a refusal: `cost` (cheapest compatible capacity),
 * `preference` (the policy's spot preference or fallback order), `capacity`, `quota`, `budget`, `policy`
 * (no compatible pool: final when every cluster is in the snapshot), `priority` (higher-priority work took
 * the room). Receivers switch on the kind; the detail is for people.
 */
export const reasonKind = z.enum(['cost', 'preference', 'capacity', 'quota', 'budget', 'policy', 'priority']);

/** A reason as data: its kind, and the words for people. */
export const reason = z.strictObject({ kind: reasonKind, detail: z.string().max(2000) });

/** Why a task went where it went: its group, the pool and why, and the cheapest pool it did not use. */
export const placementExplanation = z.strictObject({
  /** The group's name (its first task's id without the trailing `-<n>`) and shape. */
  group: z.string().max(500),
  shape: z.string().max(500),
  poolId: z.string().max(500),
  /** True when the task goes onto a node already running (or being added by an earlier cycle). */
  onRunningNodes: z.boolean(),
  costPerTask: z.number(),
  why: reason,
  nextBest: z
    .strictObject({ poolId: z.string().max(500), costPerTask: z.number(), whyNot: reason })
    .optional(),
});

/** A lease: the right to run one task on one node until `expiresAt`. */
export const leaseMsg = z.strictObject({
  leaseId: id,
  requestId: id,
  cluster: name,
  pool: name,
  /** An existing node's name, or a planned node id that the agent will bring up. */
  node: z.string().min(1),
  pricePerHour: z.number().nonnegative(),
  cpuMilli: z.number().nonnegative(),
  memoryMiB: z.number().nonnegative(),
  gpuMilli: z.number().nonnegative(),
  gpuModel: z.string().nullable(),
  capacityType: z.enum(['spot', 'on-demand', 'reserved']),
  expiresAt: z.number(),
  attempt: z.int().nonnegative(),
  /** One line for people; `explanation` holds the same as data. */
  why: z.string(),
  explanation: placementExplanation.optional(),
  /**
   * A gang member's place in it: `master` is rank 0's node (as the broker planned it; the agent names
   * the node that came up), the distributed-training rendezvous at `port`.
   */
  gang: z
    .strictObject({
      id,
      size: z.int().positive(),
      rank: z.int().nonnegative(),
      master: z.string().min(1),
      port: z.int().positive().max(65535),
    })
    .optional(),
  work: workSpec,
});

/** broker → runtime: the answer to a request. */
export const requestReply = z.discriminatedUnion('ok', [
  z.strictObject({ ok: z.literal(true), lease: leaseMsg }),
  z.strictObject({
    ok: z.literal(false),
    error: z.strictObject({ code: z.string(), message: z.string(), field: z.string().optional() }),
  }),
]);

/** Task lifecycle states. */
export const taskState = z.enum([
  'pending',
  'placed',
  'launching',
  'running',
  'succeeded',
  'failed',
  'preempted',
  'lost',
]);

/**
 * Why the broker itself ended a request or a lease (the runtime turns each into its error class):
 * a lease past its declared duration with no budget left (`budget-overrun`), a request that waited
 * longer than its policy's `maxQueueTime`, a run cancelled by `gantry run cancel` or Ctrl-C, a run whose
 * driver stopped sending heartbeats (`run-abandoned`).
 */
export const brokerFailureKind = z.enum([
  'budget-overrun',
  'max-queue-time',
  'run-cancelled',
  'run-abandoned',
]);
/** One of {@link brokerFailureKind}. */
export type BrokerFailureKind = z.infer<typeof brokerFailureKind>;

/** Why a pending request waits: the kind is for programs, the detail for people. */
export const holdKind = z.enum(['capacity', 'quota', 'budget', 'policy', 'other']);
/** One of {@link holdKind}. */
export type HoldKind = z.infer<typeof holdKind>;

/**
 * broker → runtime: a task's state changed. `lease` is set when the broker placed it again; `hold`
 * says why a pending request waits (each time that changes); `failure` why the broker ended it.
 */
export const taskStateMsg = z.strictObject({
  requestId: id,
  leaseId: id.optional(),
  state: taskState,
  at: z.number(),
  node: z.string().optional(),
  reason: z.string().optional(),
  lease: leaseMsg.optional(),
  hold: reasonOf(holdKind).optional(),
  failure: reasonOf(brokerFailureKind).optional(),
  /** Set on `preempted` when the broker stopped it for higher-priority work (not a spot reclaim). */
  preemption: reasonOf(z.enum(['priority'])).optional(),
});

/** Task states per message on a run's states subject (a state with a lease is up to about 1.3 KB). */
export const MAX_TASK_STATES = 500;

/** broker → runtime: the states of some of a run's tasks, in the order they changed. */
export const taskStatesMsg = z.strictObject({ states: z.array(taskStateMsg).max(MAX_TASK_STATES) });

/** Terminal states: the task will not change state again. */
export const TERMINAL: ReadonlySet<z.output<typeof taskState>> = new Set(['succeeded', 'failed']);
