/**
 * Running a container or command task's program as a process (embedded and `local` clusters; on
 * Kubernetes the task's own image runs it, see agents/kube-executor.ts). The typed input is written as
 * files under a directory the program reads (`$GANTRY_INPUTS/<field>`, and the whole input as
 * `inputs.json`); the program writes its outputs under `$GANTRY_OUTPUTS` (`<field>` per output field,
 * or `outputs.json`), the way Flyte's ContainerTask passes data. Fields declared as {@link Artifact}
 * travel by reference: an input artifact is written as the file's bytes, an output file is stored in
 * the artifact store and returned as a reference. The exit becomes a typed error.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { expandProgramArg, type ProgramDirs } from '../protocol/index.ts';
import type { ArtifactStore } from './artifacts.ts';
import { fromErrorMsg, NonRetriableError, OutOfMemoryError, TaskError, TimeoutError } from './errors.ts';
import { gangEnv, type TaskContext } from './task.ts';

/** An artifact passed by reference: a file's bytes in the artifact store. */
export const Artifact = z.strictObject({
  artifact: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  bytes: z.int().nonnegative(),
});
/** A reference to a file in the artifact store. */
export type Artifact = z.output<typeof Artifact>;

/** What a container or command task runs. */
export interface CommandSpec {
  command: string;
  args?: string[];
  env?: Record<string, string>;
  /** Working directory (local runs only). Default: the host's. */
  cwd?: string;
}

/** How a run of a program ended, as {@link runCommand} sees it. */
export interface CommandExit {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** The process went over the memory it was granted and was killed for it. */
  overMemory: boolean;
  log: string;
}

const logsOf = new WeakMap<TaskContext, string>();

/** The artifact holding the log of the program `ctx`'s execution ran, once it ended. @internal */
export function executionLog(ctx: TaskContext): string | undefined {
  return logsOf.get(ctx);
}

/** Log kept per execution: the program's stdout and stderr interleaved, the end kept when longer. */
const LOG_BYTES = 1024 * 1024;

/**
 * Where a program runs. By default a process here, staged in a fresh directory; a container task's
 * pod on Kubernetes uses its own: its init container staged the inputs in a volume the pod shares, the
 * main container runs the program, and its outputs sidecar waits for that container's end.
 */
export interface ProgramLauncher {
  /** Directories already staged (inputs written, outputs empty), in place of a fresh directory. */
  dirs?: ProgramDirs;
  run(spec: CommandSpec, args: string[], env: NodeJS.ProcessEnv, ctx: TaskContext): Promise<CommandExit>;
}

const launchers = new WeakMap<TaskContext, ProgramLauncher>();

/** Makes the program `ctx`'s execution runs go through `launcher`. @internal */
export function useLauncher(ctx: TaskContext, launcher: ProgramLauncher): void {
  launchers.set(ctx, launcher);
}

const processLauncher: ProgramLauncher = { run: spawnLimited };

/**
 * Runs `spec` with `input` staged under a fresh directory and returns the outputs it wrote, checked
 * against nothing yet (the task's schema is applied by the host). Memory over `ctx.placement.memoryMiB`
 * (resident set, sampled) kills it as the kernel's OOM killer would under a cgroup limit.
 */
export async function runCommand(
  spec: CommandSpec,
  input: unknown,
  inputSchema: z.ZodType,
  outputSchema: z.ZodType,
  ctx: TaskContext,
  artifacts: ArtifactStore,
): Promise<unknown> {
  const launcher = launchers.get(ctx) ?? processLauncher;
  const dir = launcher.dirs ? undefined : await mkdtemp(join(tmpdir(), 'gantry-exec-'));
  const { inputs, outputs } = launcher.dirs ?? {
    inputs: join(dir!, 'inputs'),
    outputs: join(dir!, 'outputs'),
  };
  try {
    if (dir) {
      await mkdir(inputs);
      await mkdir(outputs);
      await stageInputs(inputs, input, inputSchema, artifacts);
    }
    const env = {
      ...process.env,
      ...programEnv(spec, ctx, { inputs, outputs }),
    };
    const args = (spec.args ?? []).map((a) => expandProgramArg(a, input, { inputs, outputs }));
    const exit = await launcher.run(spec, args, env, ctx);
    logsOf.set(ctx, await artifacts.put(new TextEncoder().encode(exit.log)));
    await failOnExit(exit, spec, outputs, ctx);
    return await collectOutputs(outputs, outputSchema, artifacts);
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}

/** What a program finds in its environment besides the host's: its own variables and Gantry's. */
function programEnv(spec: CommandSpec, ctx: TaskContext, dirs: ProgramDirs): Record<string, string> {
  return {
    ...(spec.env ?? {}),
    GANTRY_INPUTS: dirs.inputs,
    GANTRY_OUTPUTS: dirs.outputs,
    GANTRY_RUN_ID: ctx.runId,
    GANTRY_EXECUTION: ctx.execution,
    GANTRY_ATTEMPT: String(ctx.attempt),
    ...(ctx.gang ? gangEnv(ctx.gang) : {}),
  };
}

/** Writes each top-level input field as a file, and the whole input as `inputs.json`. */
export async function stageInputs(
  dir: string,
  input: unknown,
  schema: z.ZodType,
  artifacts: ArtifactStore,
): Promise<void> {
  await writeFile(join(dir, 'inputs.json'), JSON.stringify(input ?? null));
  if (!isRecord(input)) return;
  const shape = objectShape(schema);
  for (const [field, value] of Object.entries(input)) {
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(field)) continue;
    const file = join(dir, field);
    if (shape?.[field] === Artifact || Artifact.safeParse(value).success)
      await writeFile(file, await artifacts.get((value as Artifact).artifact));
    else await writeFile(file, typeof value === 'string' ? value : JSON.stringify(value));
  }
}

/** Reads `outputs.json`, then each output field's file over it. */
async function collectOutputs(dir: string, schema: z.ZodType, artifacts: ArtifactStore): Promise<unknown> {
  const names = new Set(await readdir(dir));
  let out: Record<string, unknown> = {};
  if (names.has('outputs.json')) {
    const whole = parseJson(await readFile(join(dir, 'outputs.json'), 'utf8'), 'outputs.json');
    if (!isRecord(objectShape(schema))) return whole;
    if (isRecord(whole)) out = whole;
  }
  const shape = objectShape(schema);
  if (!shape) {
    if (names.has('output')) return parseJson(await readFile(join(dir, 'output'), 'utf8'), 'output');
    return undefined;
  }
  for (const [field, fieldSchema] of Object.entries(shape)) {
    if (!names.has(field)) continue;
    const bytes = await readFile(join(dir, field));
    if (fieldSchema === Artifact) out[field] = { artifact: await artifacts.put(bytes), bytes: bytes.length };
    else {
      const text = bytes.toString('utf8');
      out[field] = acceptsString(fieldSchema) ? text.replace(/\n$/, '') : parseJson(text, field);
    }
  }
  return out;
}

/** The error the program's exit means, thrown; nothing for a clean exit. */
async function failOnExit(exit: CommandExit, spec: CommandSpec, outputs: string, ctx: TaskContext) {
  const data = { exitCode: exit.exitCode, signal: exit.signal, command: spec.command };
  const tail = exit.log.trimEnd().split('\n').slice(-5).join('\n');
  if (ctx.signal.aborted) throw new TimeoutError(`${spec.command} was stopped`, data);
  if (exit.overMemory || exit.exitCode === 137 || exit.signal === 'SIGKILL')
    throw new OutOfMemoryError(`${spec.command} ran out of memory (killed, exit 137)`, {
      ...data,
      memoryMiB: ctx.placement.memoryMiB,
    });
  if (exit.exitCode === 0) return;
  // The program may say what went wrong itself: `$GANTRY_OUTPUTS/error.json` is `{ name, message, data }`.
  const said = await readFile(join(outputs, 'error.json'), 'utf8').then(
    (t) => errorFile.safeParse(parseJson(t, 'error.json')),
    () => undefined,
  );
  if (said?.success) throw fromErrorMsg({ ...said.data, data: { ...data, ...(said.data.data ?? {}) } });
  const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.exitCode}`;
  const message = `${spec.command} ${how}${tail ? `:\n${tail}` : ''}`;
  // sysexits(3) 64–78 (usage, data, config errors): running it again gives the same answer.
  if (exit.exitCode !== null && exit.exitCode >= 64 && exit.exitCode <= 78)
    throw new NonRetriableError(message, data);
  throw new TaskError(message, data);
}

const errorFile = z.object({
  name: z.string().min(1).max(200),
  message: z.string().max(100_000),
  data: z.record(z.string(), z.unknown()).optional(),
});

/** Spawns the program, keeps its log, kills it on abort or when over its memory. */
function spawnLimited(
  spec: CommandSpec,
  args: string[],
  env: NodeJS.ProcessEnv,
  ctx: TaskContext,
): Promise<CommandExit> {
  return new Promise((resolve, reject) => {
    const child = spawn(spec.command, args, {
      env,
      ...(spec.cwd ? { cwd: spec.cwd } : {}),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const chunks: Buffer[] = [];
    let size = 0;
    const keep = (b: Buffer) => {
      chunks.push(b);
      size += b.length;
      while (size > LOG_BYTES && chunks.length > 1) size -= chunks.shift()!.length;
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    let overMemory = false;
    const limitBytes = ctx.placement.memoryMiB > 0 ? ctx.placement.memoryMiB * 1024 * 1024 : Infinity;
    const watch = setInterval(() => {
      if (child.pid !== undefined && residentBytes(child.pid) > limitBytes) {
        overMemory = true;
        child.kill('SIGKILL');
      }
    }, 50);
    const stop = () => child.kill('SIGTERM');
    ctx.signal.addEventListener('abort', stop);
    child.once('error', (err) => {
      clearInterval(watch);
      ctx.signal.removeEventListener('abort', stop);
      reject(
        new NonRetriableError(`could not start ${spec.command}: ${err.message}`, { command: spec.command }),
      );
    });
    child.once('close', (exitCode, signal) => {
      clearInterval(watch);
      ctx.signal.removeEventListener('abort', stop);
      resolve({ exitCode, signal, overMemory, log: Buffer.concat(chunks).toString('utf8') });
    });
  });
}

/** Resident set of a process, from /proc (0 where there is none). */
function residentBytes(pid: number): number {
  try {
    // statm: size resident shared … in pages.
    const statm = readFileSync(`/proc/${pid}/statm`, 'utf8');
    return Number(statm.split(' ')[1]) * 4096;
  } catch {
    return 0;
  }
}

function objectShape(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  return schema instanceof z.ZodObject ? (schema.shape as Record<string, z.ZodType>) : undefined;
}

function acceptsString(schema: z.ZodType): boolean {
  return schema.safeParse('').success || schema.safeParse('x').success;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new NonRetriableError(`the program wrote ${file} that is not JSON: ${(err as Error).message}`);
  }
}
