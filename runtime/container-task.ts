/**
 * Tasks that run a program instead of a TypeScript function: `containerTask` (an image and its command;
 * on Kubernetes the pod runs that image) and `commandTask` (an executable on the machine the task
 * lands on). Both are called from workflows like any task, with zod-typed inputs and outputs passed
 * through files (see command-run.ts).
 */
import type { z } from 'zod';
import { runCommand } from './command-run.ts';
import { type Resources, type RetryPolicy, type Task, task } from './task.ts';

/** What both kinds are declared with. */
export interface ProgramTaskOptions<I extends z.ZodType, O extends z.ZodType> {
  /** Unique within the workflow's module graph. */
  name: string;
  /** The executable (`python3`, `/usr/bin/ffmpeg`), found on `PATH`. */
  command: string;
  /** Its arguments; `{{inputs.x}}` is input field `x`, `{{inputs}}` and `{{outputs}}` the directories. */
  args?: string[];
  env?: Record<string, string>;
  resources?: Resources;
  /** Written as files under `$GANTRY_INPUTS` (one per top-level field, and `inputs.json`). */
  inputs: I;
  /** Read back from `$GANTRY_OUTPUTS` (one file per field, or `outputs.json`). */
  outputs: O;
  retries?: number | RetryPolicy;
  timeout?: string | number;
  cache?: boolean | { version: string };
}

/** A container task: {@link ProgramTaskOptions} and the image the program is in. */
export interface ContainerTaskOptions<I extends z.ZodType, O extends z.ZodType> extends ProgramTaskOptions<
  I,
  O
> {
  /** The image the pod runs on Kubernetes (`python:3.12-slim`); elsewhere the command runs as a process. */
  image: string;
}

/**
 * Declares a task that runs `command` in `image`.
 *
 * @example
 * export const train = containerTask({
 *   name: 'train', image: 'python:3.12-slim', command: 'python3', args: ['/app/train.py'],
 *   inputs: z.object({ data: Artifact, epochs: z.int() }),
 *   outputs: z.object({ model: Artifact, loss: z.number() }),
 *   resources: { gpu: 'L4:1', memory: '16Gi' },
 * });
 */
export function containerTask<I extends z.ZodType, O extends z.ZodType>(
  opts: ContainerTaskOptions<I, O>,
): Task<I, O> {
  return programTask(opts, opts.image);
}

/**
 * Declares a task that runs a local executable (on Kubernetes, in the Gantry image).
 *
 * @example
 * export const fit = commandTask({
 *   name: 'fit', command: 'python3', args: ['examples/python/train.py'],
 *   inputs: z.object({ rows: z.int() }), outputs: z.object({ loss: z.number() }),
 * });
 */
export function commandTask<I extends z.ZodType, O extends z.ZodType>(
  opts: ProgramTaskOptions<I, O> & { cwd?: string },
): Task<I, O> {
  return programTask(opts, undefined);
}

function programTask<I extends z.ZodType, O extends z.ZodType>(
  opts: ProgramTaskOptions<I, O> & { cwd?: string },
  image: string | undefined,
): Task<I, O> {
  const program = {
    ...(image ? { image } : {}),
    command: opts.command,
    args: opts.args ?? [],
    env: opts.env ?? {},
  };
  return task(
    {
      name: opts.name,
      input: opts.inputs,
      output: opts.outputs,
      ...(opts.resources ? { resources: opts.resources } : {}),
      ...(opts.retries !== undefined ? { retries: opts.retries } : {}),
      ...(opts.timeout !== undefined ? { timeout: opts.timeout } : {}),
      ...(opts.cache !== undefined ? { cache: opts.cache } : {}),
      program,
    },
    async (input, ctx) =>
      (await runCommand(
        { ...program, ...(opts.cwd ? { cwd: opts.cwd } : {}) },
        input,
        opts.inputs,
        opts.outputs,
        ctx,
        ctx.artifacts,
      )) as z.input<O>,
  );
}
