/**
 * Runs: typed failures, lineage and run records, run events, results and invocations, run control.
 */
import { z } from 'zod';
import { id, reasonOf, team } from './fields.ts';
import { holdKind, leaseMsg, resourcesMsg, valueMsg } from './requests.ts';

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
  /** Where it ran: the run events' placement, without the explanation. */
  placement: placementMsg.omit({ why: true }).optional(),
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
