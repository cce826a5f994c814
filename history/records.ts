/**
 * What the history store reads, schema-checked: the broker's log (lifecycle events and the cost
 * ledger: `gantry-events`, or `<state>/broker` embedded) and the runtime's log (lineage records and
 * run summaries: `gantry-lineage`, or `<state>/runtime`). Each log entry is a JSON array of records.
 * A record that does not parse is kept in `ingest_rejects` with the reason, never applied.
 */
import { z } from 'zod';
import type { LifecycleEvent, NodeLife, TaskUsage } from '../broker/index.ts';
import { runtimeLogRecord, type RuntimeLogRecord } from '../protocol/index.ts';

const opt = <T extends z.ZodType>(t: T) => t.optional().nullable();

const nodeRef = {
  at: z.number(),
  cluster: z.string().min(1),
  pool: z.string().min(1),
  node: z.string().min(1),
  instanceType: z.string(),
  capacityType: z.string(),
  gpuModel: z.string().nullable(),
};

/** A task's use of a node (broker/ledger.ts `TaskUsage`). */
export const usageRecord = z.object({
  kind: z.literal('usage'),
  ...nodeRef,
  lease: z.string(),
  request: z.string(),
  gpus: z.number().nonnegative(),
  cpuMilli: z.number().nonnegative(),
  memoryMiB: z.number().nonnegative(),
  share: z.number().nonnegative(),
  nodePricePerHour: z.number().nonnegative(),
  team: z.string(),
  workflow: opt(z.string()),
  run: opt(z.string()),
  task: opt(z.string()),
  attempt: z.int().nonnegative(),
  start: z.number(),
  end: z.number(),
  ended: z.string(),
  timeScale: z.number().positive().optional(),
});

/** A node's lifetime starts or ends (broker/ledger.ts `NodeLife`). */
export const nodeLifeRecord = z.object({
  kind: z.enum(['node-start', 'node-end']),
  ...nodeRef,
  gpuCount: z.number().nonnegative(),
  pricePerHour: z.number().nonnegative(),
  ended: opt(z.string()),
});

/** A lifecycle event (broker/records.ts `LifecycleEvent`): leases become placements. */
export const lifecycleRecord = z.object({
  at: z.number(),
  kind: z.enum(['request', 'lease', 'node', 'cluster', 'run']),
  id: z.string(),
  state: z.string(),
  cluster: opt(z.string()),
  pool: opt(z.string()),
  node: opt(z.string()),
  team: opt(z.string()),
  pricePerHour: opt(z.number()),
  reason: opt(z.string()),
  request: opt(z.string()),
  why: opt(z.string()),
});

/** Told apart by `kind`, so that each record is checked against its one schema. */
export const brokerLogRecord = z.discriminatedUnion('kind', [usageRecord, nodeLifeRecord, lifecycleRecord]);

export type UsageRecord = z.output<typeof usageRecord>;
export type NodeLifeRecord = z.output<typeof nodeLifeRecord>;
export type LifecycleRecord = z.output<typeof lifecycleRecord>;
export type BrokerLogRecord = z.output<typeof brokerLogRecord>;

// The broker writes what these schemas read: a change to its records that they would refuse fails here.
const _usage: z.input<typeof usageRecord> = {} as TaskUsage;
const _life: z.input<typeof nodeLifeRecord> = {} as NodeLife;
const _event: z.input<typeof lifecycleRecord> = {} as LifecycleEvent;
void [_usage, _life, _event];

/** The two logs history follows. */
export const SOURCES = ['broker', 'runtime'] as const;
export type Source = (typeof SOURCES)[number];

/** A record of one source, or why it was refused. */
export type Parsed<S extends Source> =
  | { ok: true; record: S extends 'broker' ? BrokerLogRecord : RuntimeLogRecord }
  | { ok: false; error: string; body: string };

const decoder = new TextDecoder();

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const isOptStr = (v: unknown) => v === undefined || v === null || typeof v === 'string';
const isNonNeg = (v: unknown) => isNum(v) && v >= 0;

/**
 * True only of a usage that {@link usageRecord} accepts as it is: the ledger's bulk is usages, and a
 * check by hand keeps the object JSON.parse made instead of copying it. Whatever it does not accept
 * goes to the schema (which says why). records.test.ts holds the two together.
 */
export function isPlainUsage(r: unknown): r is UsageRecord {
  if (typeof r !== 'object' || r === null) return false;
  const u = r as Record<string, unknown>;
  return (
    u.kind === 'usage' &&
    isNum(u.at) &&
    isStr(u.cluster) &&
    u.cluster !== '' &&
    isStr(u.pool) &&
    u.pool !== '' &&
    isStr(u.node) &&
    u.node !== '' &&
    isStr(u.instanceType) &&
    isStr(u.capacityType) &&
    (u.gpuModel === null || isStr(u.gpuModel)) &&
    isStr(u.lease) &&
    isStr(u.request) &&
    isNonNeg(u.gpus) &&
    isNonNeg(u.cpuMilli) &&
    isNonNeg(u.memoryMiB) &&
    isNonNeg(u.share) &&
    isNonNeg(u.nodePricePerHour) &&
    isStr(u.team) &&
    isOptStr(u.workflow) &&
    isOptStr(u.run) &&
    isOptStr(u.task) &&
    Number.isSafeInteger(u.attempt) &&
    (u.attempt as number) >= 0 &&
    isNum(u.start) &&
    isNum(u.end) &&
    isStr(u.ended) &&
    (u.timeScale === undefined || (isNum(u.timeScale) && u.timeScale > 0))
  );
}

const isText = (v: unknown, min: number, max: number) =>
  typeof v === 'string' && v.length >= min && v.length <= max;
const isHash = (v: unknown) => isText(v, 1, 200);
const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isStrOrNum = (v: unknown) => isStr(v) || isNum(v);
/** Every element (holes too, as the schema reads them: `every` skips them). */
const all = (v: unknown[], ok: (e: unknown) => boolean) => {
  for (let i = 0; i < v.length; i++) if (!ok(v[i])) return false;
  return true;
};
const isHashes = (v: unknown) => v === undefined || (Array.isArray(v) && v.length <= 1000 && all(v, isHash));
/** Only `keys` (a strict object's fields) and none else. */
const onlyKeys = (o: Record<string, unknown>, keys: ReadonlySet<string>) => {
  for (const k in o) if (!keys.has(k)) return false;
  return true;
};

const ASKED_KEYS = new Set(['profile', 'cpu', 'memory', 'gpu', 'spot', 'duration', 'nodes']);
const SPOT = new Set(['never', 'allowed', 'preferred', 'required']);
const REFS_KEYS = new Set(['input', 'output']);
const STORED_KEYS = new Set(['hash', 'bytes']);

/** The resources asked (protocol `resourcesMsg`, a strict object). */
function isAsked(v: unknown): boolean {
  if (!isObject(v) || !onlyKeys(v, ASKED_KEYS)) return false;
  const gpu = v.gpu;
  return (
    (v.profile === undefined || isStr(v.profile)) &&
    (v.cpu === undefined || isStrOrNum(v.cpu)) &&
    (v.memory === undefined || isStrOrNum(v.memory)) &&
    (gpu === undefined || isStrOrNum(gpu) || (Array.isArray(gpu) && all(gpu, isStrOrNum))) &&
    (v.spot === undefined || SPOT.has(v.spot as string)) &&
    (v.duration === undefined || isStrOrNum(v.duration)) &&
    (v.nodes === undefined || isNum(v.nodes))
  );
}

/** Where an execution runs (protocol `placementMsg` without `why`). */
function isPlacement(v: unknown): boolean {
  if (v === undefined) return true;
  if (!isObject(v)) return false;
  return (
    isStr(v.cluster) &&
    isStr(v.pool) &&
    isStr(v.node) &&
    isStr(v.capacityType) &&
    isNum(v.pricePerHour) &&
    isNum(v.cpuMilli) &&
    isNum(v.memoryMiB) &&
    isNum(v.gpuMilli) &&
    (v.gpuModel === null || isStr(v.gpuModel))
  );
}

/** The fields an execution's start and its end share (protocol `executionStartRecord`). */
function isExecutionStart(u: Record<string, unknown>): boolean {
  return (
    isText(u.run, 1, 200) &&
    isText(u.execution, 1, 300) &&
    (u.parent === undefined || isText(u.parent, 0, 300)) &&
    isText(u.task, 1, 200) &&
    isText(u.codeHash, 0, 200) &&
    isCount(u.attempt) &&
    isHash(u.input) &&
    isAsked(u.asked) &&
    typeof u.override === 'boolean' &&
    isPlacement(u.placement) &&
    isNum(u.startedAt)
  );
}

function isRefs(v: unknown): boolean {
  if (v === undefined) return true;
  return isObject(v) && onlyKeys(v, REFS_KEYS) && isHashes(v.input) && isHashes(v.output);
}

function isStored(v: unknown): boolean {
  if (v === undefined) return true;
  return (
    Array.isArray(v) &&
    v.length <= 1000 &&
    all(v, (s) => isObject(s) && onlyKeys(s, STORED_KEYS) && isHash(s.hash) && isCount(s.bytes))
  );
}

/**
 * True only of an execution's start or end (lineage record) that the runtime log's schema accepts
 * as it is, as {@link isPlainUsage} is of a usage: the runtime's log is mostly these. A lineage
 * record has no `kind`. Whatever it does not accept goes to the schema. records.test.ts holds the two
 * together.
 */
export function isPlainExecution(r: unknown): r is RuntimeLogRecord {
  if (!isObject(r) || !isExecutionStart(r)) return false;
  if (r.kind === 'start') return true;
  return (
    !('kind' in r) &&
    (r.output === undefined || isHash(r.output)) &&
    isRefs(r.refs) &&
    isStored(r.stored) &&
    (r.error === undefined || (isObject(r.error) && isStr(r.error.name) && isStr(r.error.message))) &&
    isCount(r.preemptions) &&
    (r.logs === undefined || isText(r.logs, 0, 200)) &&
    isNum(r.endedAt) &&
    isNonNeg(r.costUsd) &&
    typeof r.cached === 'boolean' &&
    typeof r.warm === 'boolean'
  );
}

const [runLogRecord, executionStartLogRecord, lineageLogRecord] = runtimeLogRecord.options;

/** The one schema a runtime record is checked against, by its `kind` (a lineage record has none). */
export const runtimeSchemaOf = (r: unknown) => {
  const kind = isObject(r) ? r.kind : undefined;
  return kind === 'run' ? runLogRecord : kind === 'start' ? executionStartLogRecord : lineageLogRecord;
};

/** The records of one log entry, each parsed (or refused with the field at fault). */
export function parseEntry<S extends Source>(source: S, data: Uint8Array): Parsed<S>[] {
  let raw: unknown;
  const text = decoder.decode(data);
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return [{ ok: false, error: `not JSON: ${(err as Error).message}`, body: text.slice(0, 4096) }];
  }
  const plain = source === 'broker' ? isPlainUsage : isPlainExecution;
  return (Array.isArray(raw) ? raw : [raw]).map((r): Parsed<S> => {
    if (plain(r)) return { ok: true, record: r } as Parsed<S>;
    const schema = source === 'broker' ? brokerLogRecord : runtimeSchemaOf(r);
    const p = schema.safeParse(r);
    if (p.success) return { ok: true, record: p.data } as Parsed<S>;
    const issue = p.error.issues[0]!;
    const field = issue.path.map(String).join('.');
    return {
      ok: false,
      error: `${field || '(record)'}: ${issue.message.replace(/^Invalid input: /, '')}`,
      body: JSON.stringify(r).slice(0, 4096),
    };
  });
}
