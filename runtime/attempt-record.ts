/** The lineage record of one attempt of a task call: what it was given, where it ran, how it ended. */
import { z } from 'zod';
import { lineageRecord, type LeaseMsg, type ResultMsg, type ValueMsg } from '../protocol/index.ts';
import type { ArtifactStore } from './artifacts.ts';
import { TaskError } from './errors.ts';
import { lineagePlacement } from './ids.ts';
import type { LineageRecord } from './lineage.ts';
import type { Resources, Scope, Task } from './task.ts';
import { valueHash } from './values.ts';

/** How an attempt that reached a host ended. */
export interface Outcome {
  result: ResultMsg;
  lease: LeaseMsg;
  preemptions: number;
  /** Cost of the segments cut short by preemptions. */
  lostCostUsd: number;
  warm: boolean;
  /** A gang: what the members other than the one whose result this is cost. */
  membersCostUsd?: number;
  /** A gang: every member's lease, by rank. */
  members?: LeaseMsg[];
}

/** How an attempt ended, for its lineage record. */
export interface RecordDetail {
  outcome?: Outcome;
  costUsd?: number;
  output?: ValueMsg;
  /** Artifacts inside the output. */
  outputRefs?: string[];
  err?: unknown;
  hit?: ValueMsg;
}

/** The call an attempt belongs to. */
export interface CallInfo {
  task: Task;
  scope: Scope;
  execution: string;
  input: ValueMsg;
  inputRefs: string[];
  asked: Resources;
  override: boolean;
}

/** The lineage record of attempt `attempt` of `call`. */
export function attemptRecord(
  call: CallInfo,
  attempt: number,
  startedAt: number,
  endedAt: number,
  how: RecordDetail,
): LineageRecord {
  const lease = how.outcome?.lease;
  const err = how.err;
  const output = how.output ?? how.hit;
  const outputRefs = how.outputRefs ?? [];
  const stored = [call.input, ...(output ? [output] : [])].flatMap((v) =>
    'ref' in v ? [{ hash: v.ref, bytes: v.bytes }] : [],
  );
  return {
    run: call.scope.runId,
    execution: call.execution,
    parent: call.scope.execution,
    task: call.task.taskName,
    codeHash: call.task.codeHash,
    attempt,
    input: valueHash(call.input),
    ...(output ? { output: valueHash(output) } : {}),
    ...(call.inputRefs.length > 0 || outputRefs.length > 0
      ? {
          refs: {
            ...(call.inputRefs.length > 0 ? { input: call.inputRefs } : {}),
            ...(outputRefs.length > 0 ? { output: outputRefs } : {}),
          },
        }
      : {}),
    ...(stored.length > 0 ? { stored } : {}),
    ...(err !== undefined
      ? {
          error:
            err instanceof Error
              ? { name: err.name, message: err.message }
              : { name: 'Error', message: String(err) },
        }
      : {}),
    asked: call.asked,
    override: call.override,
    ...(lease ? { placement: lineagePlacement(lease) } : {}),
    preemptions: how.outcome?.preemptions ?? 0,
    ...(how.outcome?.result.logs ? { logs: how.outcome.result.logs } : {}),
    startedAt,
    endedAt,
    costUsd: how.costUsd ?? 0,
    cached: how.hit !== undefined,
    warm: how.outcome?.warm ?? false,
  };
}

const lineageArray = z.array(lineageRecord);

/** The lineage records of the calls an execution made: inline in its result, or in the artifact store. */
export async function nestedLineage(result: ResultMsg, artifacts: ArtifactStore): Promise<LineageRecord[]> {
  if (!result.lineageRef) return result.lineage ?? [];
  const parsed = lineageArray.safeParse(
    JSON.parse(new TextDecoder().decode(await artifacts.get(result.lineageRef))),
  );
  if (!parsed.success)
    throw new TaskError(`the lineage in ${result.lineageRef} is not valid: ${parsed.error.message}`);
  return [...(result.lineage ?? []), ...parsed.data];
}
