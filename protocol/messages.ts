/**
 * Gantry's wire protocol: versioned subjects and one zod schema per message. Every message is JSON; every
 * receiver validates it here and answers a bad one with an error naming the field. See docs/protocol.md.
 */
import { z } from 'zod';

/** Subject prefix; bumped when a message changes incompatibly. */
export const PROTOCOL = 'gantry.v1';

/**
 * Subjects, by who listens. `<cluster>` is the Cluster's metadata.name, `<team>` a ResourcePolicy team.
 * Everything a team's runtime sends or reads is under `gantry.v1.team.<team>.`, and everything an agent
 * sends under `gantry.v1.agent.<cluster>.`, so that NATS permissions (docs/security.md) give each
 * credential its own subjects: the broker takes the team or the cluster from the subject, never from
 * the message.
 */
export const subjects = {
  /** a team's runtime → broker, request/reply: ask for resources; the reply is the lease (or the refusal). */
  request: (team: string) => `${PROTOCOL}.team.${team}.request`,
  /**
   * a cluster's agent (its task hosts' nested calls) → broker, request/reply: as `request`, for a team
   * that has work on the cluster, never for `process` work.
   */
  agentRequest: (cluster: string) => `${PROTOCOL}.agent.${cluster}.request`,
  /** anyone → broker, request/reply: operator queries and commands (`gantry get`, `gantry cluster`). */
  admin: (verb: string) => `${PROTOCOL}.broker.admin.${verb}`,
  /** broker → the team's runtime: a task's lifecycle. */
  taskState: (team: string, requestId: string) => `${PROTOCOL}.team.${team}.task.${requestId}.state`,
  /** agent → broker, request/reply. */
  register: (cluster: string) => `${PROTOCOL}.agent.${cluster}.register`,
  /** agent → broker: capacity, every heartbeat interval. */
  heartbeat: (cluster: string) => `${PROTOCOL}.agent.${cluster}.heartbeat`,
  /** agent → broker: lease lifecycle and node events. */
  events: (cluster: string) => `${PROTOCOL}.agent.${cluster}.events`,
  /** broker → agent, request/reply: launch work (idempotent by lease id). */
  launch: (cluster: string) => `${PROTOCOL}.agent.${cluster}.launch`,
  /** broker → agent: add or remove nodes. */
  scale: (cluster: string) => `${PROTOCOL}.agent.${cluster}.scale`,
  /** broker → agent: stop a lease's work (drain, cancel). */
  cancel: (cluster: string) => `${PROTOCOL}.agent.${cluster}.cancel`,
  /** broker → agent, request/reply: the cluster is removed; terminate these nodes, then stop. */
  stop: (cluster: string) => `${PROTOCOL}.agent.${cluster}.stop`,
  /**
   * task host on `cluster` → the team's runtime: the outcome of one task execution (`resultMsg`). The
   * last token names the cluster that sent it (its credential may publish no other), so the runtime
   * takes a result only from the cluster holding the lease.
   */
  result: (team: string, execution: string, cluster: string) =>
    `${PROTOCOL}.team.${team}.exec.${execution}.result.${cluster}`,
  /** runtime → the team's warm workers, request/reply in a queue group: run invocations (`invokeMsg`). */
  invoke: (team: string, pool: string) => `${PROTOCOL}.team.${team}.worker.${pool}.invoke`,
  /** runtime → the team's warm workers: stop now (empty body). */
  stopWorkers: (team: string, pool: string) => `${PROTOCOL}.team.${team}.worker.${pool}.stop`,
  /** runtime → anyone of the team watching a run (`gantry run` prints them): placements, retries, ends. */
  runEvents: (team: string, runId: string) => `${PROTOCOL}.team.${team}.run.${runId}.events`,
  /**
   * run driver → broker (`runControlMsg`): the run's liveness heartbeat, its end, or a cancel
   * (request/reply: the answer says what was stopped).
   */
  runControl: (team: string, runId: string) => `${PROTOCOL}.team.${team}.run.${runId}.control`,
} as const;

// Ids end up in subjects (`gantry.v1.task.<requestId>.state`) and store keys: no dots, spaces or wildcards.
const id = z
  .string()
  .regex(
    /^[A-Za-z0-9_=:@+\-]{1,200}$/,
    'must be 1–200 letters, digits or _=:@+- (no dots, spaces or wildcards)',
  );
/** A team name: it is a subject token (`gantry.v1.team.<team>.request`). */
const team = z
  .string()
  .regex(/^[A-Za-z0-9_\-]{1,100}$/, 'must be 1–100 letters, digits, _ or - (it is part of NATS subjects)');
const name = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a lower-case name');

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

const nodeMsg = z.strictObject({
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

/** A typed reason: `{ kind, detail }`. */
const reasonOf = <K extends z.ZodType>(kind: K) => z.strictObject({ kind, detail: z.string().max(2000) });

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

/** A typed failure on the wire; the runtime turns `name` back into its error class. */
export const errorMsg = z.strictObject({
  name: z.string().min(1).max(200),
  message: z.string().max(100_000),
  data: z.record(z.string(), z.unknown()).optional(),
  /** The thrown error's classes, its own first (`['DataQualityError', 'NonRetriableError', 'TaskError']`). */
  classes: z.array(z.string().min(1).max(200)).max(20).optional(),
  stack: z.string().max(100_000).optional(),
});

/** A content hash: `sha256:<64 hex digits>` (the `none` of a run that failed before its input). */
const hash = z.string().min(1).max(200);

/**
 * One execution (one attempt of one task call) as lineage keeps it: the task and its code hash, the
 * content hashes of its input and output, the resources asked and granted, placement, attempt, cost and
 * the calling execution. `refs` are the artifacts found *inside* the input and output (a dataset passed
 * as `{ data, lr }`): the data-flow edges beside the whole values. `stored` are the values that went by
 * reference to the artifact store, with their size.
 */
export const lineageRecord = z.object({
  run: z.string().min(1).max(200),
  execution: z.string().min(1).max(300),
  parent: z.string().max(300).optional(),
  task: z.string().min(1).max(200),
  codeHash: z.string().max(200),
  attempt: z.int().nonnegative(),
  input: hash,
  output: hash.optional(),
  refs: z
    .strictObject({
      input: z.array(hash).max(1000).optional(),
      output: z.array(hash).max(1000).optional(),
    })
    .optional(),
  stored: z
    .array(z.strictObject({ hash, bytes: z.int().nonnegative() }))
    .max(1000)
    .optional(),
  error: z.object({ name: z.string(), message: z.string() }).optional(),
  asked: resourcesMsg,
  override: z.boolean(),
  placement: z
    .object({
      cluster: z.string(),
      pool: z.string(),
      node: z.string(),
      capacityType: z.string(),
      pricePerHour: z.number(),
      cpuMilli: z.number(),
      memoryMiB: z.number(),
      gpuMilli: z.number(),
      gpuModel: z.string().nullable(),
    })
    .optional(),
  /** Times the spot node under this execution was reclaimed and the broker placed it again. */
  preemptions: z.int().nonnegative(),
  /** The artifact holding the execution's log (container and command tasks): `gantry logs`. */
  logs: z.string().max(200).optional(),
  startedAt: z.number(),
  endedAt: z.number(),
  costUsd: z.number().nonnegative(),
  cached: z.boolean(),
  /** Ran on a warm worker (no solve cycle). */
  warm: z.boolean(),
});

/**
 * How a run stands. `cancelled`: cancelled (Ctrl-C, `gantry run cancel`); `abandoned`: its driver died
 * (no heartbeat past the grace period) and the broker stopped its work.
 */
export const runStatus = z.enum(['running', 'succeeded', 'failed', 'cancelled', 'abandoned']);
/** The statuses a run may have, for filters. */
export const RUN_STATUSES = runStatus.options;

/**
 * A run's summary: written by its driver when it starts and again when it ends, or, when its driver died
 * or was cancelled without saying so, its end by the broker (in the broker's log, kind `run`).
 */
export const runRecord = z.object({
  run: z.string().min(1).max(200),
  workflow: z.string().min(1).max(200),
  module: z.string().max(4096),
  team: z.string().min(1),
  status: runStatus,
  startedAt: z.number(),
  endedAt: z.number().optional(),
  input: z.string(),
  output: z.string().optional(),
  error: z.string().optional(),
  costUsd: z.number(),
  executions: z.int().nonnegative(),
});

/**
 * An execution's start: written once, when the broker placed its attempt, so that a running run's
 * tasks are seen with their placement before they end. Its lineage record, at the end, completes it.
 */
export const executionStartRecord = lineageRecord
  .pick({
    run: true,
    execution: true,
    parent: true,
    task: true,
    codeHash: true,
    attempt: true,
    input: true,
    asked: true,
    override: true,
    placement: true,
    startedAt: true,
  })
  .extend({ kind: z.literal('start') });

/**
 * One entry of the runtime's log (the `gantry-lineage` stream, or the state directory embedded): a
 * JSON array of lineage records, execution starts (`kind: 'start'`) and run summaries (`kind:
 * 'run'`), in the order they happened.
 */
export const runtimeLogRecord = z.union([
  runRecord.extend({ kind: z.literal('run') }),
  executionStartRecord,
  lineageRecord,
]);

/** Where an execution runs, as run events carry it. */
export const placementMsg = z.object({
  cluster: z.string(),
  pool: z.string(),
  node: z.string(),
  capacityType: z.string(),
  pricePerHour: z.number(),
  cpuMilli: z.number(),
  memoryMiB: z.number(),
  gpuMilli: z.number(),
  gpuModel: z.string().nullable(),
  why: z.string(),
});

/** runtime → anyone watching a run (`subjects.runEvents`): what `gantry run` prints. */
export const runEvent = z.strictObject({
  type: z.enum([
    'placed',
    'running',
    'preempted',
    'retry',
    'succeeded',
    'failed',
    'cached',
    'workers',
    'held',
  ]),
  run: z.string().min(1),
  execution: z.string().min(1),
  task: z.string().min(1),
  parent: z.string().optional(),
  attempt: z.int().nonnegative(),
  at: z.number(),
  placement: placementMsg.optional(),
  message: z.string().optional(),
  costUsd: z.number().optional(),
  /** For `held`: why the broker holds it, as it said. */
  hold: reasonOf(holdKind).optional(),
});

const ended = {
  execution: id,
  startedAt: z.number(),
  endedAt: z.number(),
  /**
   * How long it ran on its cluster's clock, ms: on a simulated cluster, what its `ctx.sleep` calls
   * simulated plus the rest as measured. Its cost is its price over this time. Absent: `endedAt −
   * startedAt`, on the runtime's time scale.
   */
  ranMs: z.number().nonnegative().optional(),
  /** Lineage records of the tasks this execution called (the root runtime stores them). */
  lineage: z.array(lineageRecord).max(100_000).optional(),
  /** The same records as one artifact (a JSON array), when too many to travel in the message. */
  lineageRef: z.string().min(1).max(200).optional(),
  /** The artifact holding the log of the program a container or command task ran. */
  logs: z.string().min(1).max(200).optional(),
};

/** task host → runtime: how an execution ended. */
export const resultMsg = z.discriminatedUnion('ok', [
  z.strictObject({ ok: z.literal(true), output: valueMsg, ...ended }),
  z.strictObject({ ok: z.literal(false), error: errorMsg, ...ended }),
]);

/** runtime → warm worker: run these invocations of one task (one, or a chunk of a `map`). */
export const invokeMsg = z.strictObject({
  task: z.string().min(1).max(200),
  run: id,
  team: z.string().min(1),
  /** The worker stops an invocation after this long (TimeoutError). */
  timeoutMs: z.number().positive().optional(),
  executions: z
    .array(
      z.strictObject({ execution: id, input: valueMsg, attempt: z.int().nonnegative().max(1000).optional() }),
    )
    .min(1)
    .max(10_000),
});

/** warm worker → runtime: the results, in the order of the invocations. */
export const invokeReply = z.strictObject({
  /** The worker's lease: where the invocations ran and at what price. */
  lease: leaseMsg,
  node: z.string(),
  results: z.array(resultMsg),
});

/** The error reply every receiver gives to a message it cannot take. */
export const errorReply = z.strictObject({
  ok: z.literal(false),
  error: z.strictObject({ code: z.string(), message: z.string(), field: z.string().optional() }),
});

export type ResourcesMsg = z.output<typeof resourcesMsg>;
export type WorkSpec = z.output<typeof workSpec>;
export type RequestMsg = z.output<typeof requestMsg>;
export type LeaseMsg = z.output<typeof leaseMsg>;
export type ReasonKind = z.output<typeof reasonKind>;
export type Reason = z.output<typeof reason>;
export type PlacementExplanation = z.output<typeof placementExplanation>;
export type RequestReply = z.output<typeof requestReply>;
export type TaskState = z.output<typeof taskState>;
export type NodeMsg = z.output<typeof nodeMsg>;
export type RegisterMsg = z.output<typeof registerMsg>;
export type HeartbeatMsg = z.output<typeof heartbeatMsg>;
export type AgentEvent = z.output<typeof agentEvent>;
export type LeaseEndCause = z.output<typeof leaseEndCause>;
export type LaunchMsg = z.output<typeof launchMsg>;
export type AgentEvents = z.output<typeof agentEvents>;
export type ScaleMsg = z.output<typeof scaleMsg>;
export type CancelMsg = z.output<typeof cancelMsg>;
export type StopMsg = z.output<typeof stopMsg>;
export type StopReply = z.output<typeof stopReply>;
export type TaskStateMsg = z.output<typeof taskStateMsg>;
export type ErrorReply = z.output<typeof errorReply>;
export type ValueMsg = z.output<typeof valueMsg>;
export type ErrorMsg = z.output<typeof errorMsg>;
export type ResultMsg = z.output<typeof resultMsg>;
export type InvokeMsg = z.output<typeof invokeMsg>;
export type InvokeReply = z.output<typeof invokeReply>;
export type LineageRecord = z.output<typeof lineageRecord>;
export type RunRecord = z.output<typeof runRecord>;
export type RuntimeLogRecord = z.output<typeof runtimeLogRecord>;
export type ExecutionStartRecord = z.output<typeof executionStartRecord>;
export type PlacementMsg = z.output<typeof placementMsg>;
export type RunEvent = z.output<typeof runEvent>;

/** Terminal states: the task will not change state again. */
export const TERMINAL: ReadonlySet<TaskState> = new Set(['succeeded', 'failed']);

/**
 * Validates a message body against its schema. Returns the value, or an error reply that names the
 * subject's field, for the receiver to send back and log.
 *
 * @example
 * const parsed = parseMessage(requestMsg, msg.data);
 * if (!parsed.ok) return transport.respond(msg, encodeJson(parsed));
 */
export function parseMessage<T extends z.ZodType>(
  schema: T,
  data: Uint8Array,
): { ok: true; value: z.output<T> } | ErrorReply {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(data));
  } catch (err) {
    return { ok: false, error: { code: 'bad-json', message: `not JSON: ${(err as Error).message}` } };
  }
  const parsed = schema.safeParse(raw);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issue = parsed.error.issues[0]!;
  const field = issue.path.map(String).join('.');
  return {
    ok: false,
    error: {
      code: 'bad-message',
      message: `${field || '(message)'}: ${issue.message.replace(/^Invalid input: /, '')}`,
      field,
    },
  };
}

/**
 * run driver → broker: `heartbeat` while the driver lives (a run that stops sending them is abandoned
 * after the broker's grace period: its pending requests withdrawn, its leases stopped), `end` when it
 * ended on its own, `cancel` to stop it now.
 */
export const runControlMsg = z.strictObject({
  type: z.enum(['heartbeat', 'end', 'cancel']),
  /** For `cancel`: who or what cancelled it, for the record. */
  reason: z.string().max(500).optional(),
});
/** A run control message. */
export type RunControlMsg = z.output<typeof runControlMsg>;

/** broker → whoever cancelled a run: what was withdrawn (pending) and stopped (running leases). */
export const runCancelReply = z.strictObject({
  ok: z.literal(true),
  run: z.string(),
  withdrawn: z.array(z.strictObject({ requestId: z.string(), task: z.string().optional() })),
  stopped: z.array(
    z.strictObject({
      requestId: z.string(),
      leaseId: z.string(),
      task: z.string().optional(),
      cluster: z.string(),
      node: z.string(),
    }),
  ),
});
/** What a cancel stopped. */
export type RunCancelReply = z.output<typeof runCancelReply>;
