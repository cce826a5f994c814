/**
 * The Gantry image's two parts in a container task's pod on Kubernetes (agents/kube-container-pod.ts
 * lays the pod out): `stageLeaseInputs` is the init container, which writes the checked input as
 * files for the task's own container; `containerLauncher` lets the outputs sidecar run the task as
 * any host does, except that the program is the main container it waits for. Outputs, typed errors
 * and the log then come out exactly as for a program run as a process (command-run.ts).
 */
import { mkdir } from 'node:fs/promises';
import type { LeaseMsg, ProgramDirs, ResultMsg } from '../protocol/index.ts';
import { type CommandExit, type ProgramLauncher, stageInputs } from './command-run.ts';
import { toErrorMsg } from './errors.ts';
import { type HostServices, publishLeaseResult, resolveTask, type TaskWork } from './host.ts';
import { checkValue, decodeValue } from './values.ts';

/**
 * Writes a container task lease's input under `dirs.inputs` (one file per field and `inputs.json`,
 * artifacts as their bytes) and makes `dirs.outputs`. On failure (no such task, an input that does
 * not match its schema, an artifact that is gone) publishes the typed error as the task's result and
 * returns it; `undefined` when the inputs are in place.
 */
export async function stageLeaseInputs(
  services: HostServices,
  lease: LeaseMsg,
  dirs: ProgramDirs,
): Promise<ResultMsg | undefined> {
  const work = lease.work as TaskWork;
  const startedAt = Date.now();
  try {
    const task = await resolveTask(work.module, work.task);
    const input = checkValue(task.options.input, await decodeValue(work.input, services.artifacts), {
      task: work.task,
      side: 'input',
    });
    await mkdir(dirs.inputs, { recursive: true });
    await mkdir(dirs.outputs, { recursive: true });
    await stageInputs(dirs.inputs, input, task.options.input, services.artifacts);
    return undefined;
  } catch (err) {
    return publishLeaseResult(services, lease, {
      ok: false,
      execution: work.execution,
      error: toErrorMsg(err),
      startedAt,
      endedAt: Date.now(),
    });
  }
}

/** How the program's container ended, as the sidecar learns it. */
export interface ProgramContainerEnd {
  /** `null` when the wait was stopped (the lease stopped, or the task's timeout passed). */
  exitCode: number | null;
  /** The container's terminated reason: `OOMKilled` is an `OutOfMemoryError`. */
  reason?: string;
  log: string;
}

/**
 * The launcher of an outputs sidecar: the inputs are already staged in `dirs`, and the program is the
 * pod's main container, whose end `wait` reports.
 *
 * @example
 * await runTaskLease(services, runtime, lease, node, signal,
 *   containerLauncher(POD_PROGRAM_DIRS, (signal) => waitForContainerEnd({ ...pod, signal })));
 */
export function containerLauncher(
  dirs: ProgramDirs,
  wait: (signal: AbortSignal) => Promise<ProgramContainerEnd>,
): ProgramLauncher {
  return {
    dirs,
    async run(_spec, _args, _env, ctx): Promise<CommandExit> {
      const end = await wait(ctx.signal);
      return {
        exitCode: end.exitCode,
        signal: null,
        overMemory: end.reason === 'OOMKilled',
        log: end.log,
      };
    },
  };
}
