/**
 * The process host: each `task` or `worker` lease runs in its own Node process, with a V8 heap limit
 * equal to the memory granted, talking to Gantry through this process (runtime/ipc.ts). A process that
 * runs out of heap, or is killed by the kernel's OOM killer, ends its execution with an
 * `OutOfMemoryError`; the runtime then retries with more memory.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Executor, ExecutorReport } from '../agents/executor.ts';
import {
  encodeJson,
  type ErrorMsg,
  invokeMsg,
  type InvokeReply,
  type LeaseMsg,
  type Msg,
  parseMessage,
  type ResultMsg,
  resultMsg,
  subjects,
} from '../protocol/index.ts';
import type { HostServices } from './host.ts';
import { relayForChild } from './ipc.ts';

/** Options of {@link createProcessHost}. */
export interface ProcessHostOptions extends HostServices {
  /** Copy the workers' stderr to this process's stderr. Default true. */
  forwardStderr?: boolean;
  /** Working directory of the workers. */
  cwd?: string;
  /**
   * Keep one booted spare process per heap size used so far (Node, the TypeScript loader and the
   * runtime loaded; the workflow module preloaded), so the next lease of that size starts in about a
   * tenth of the time. Default true.
   */
  spares?: boolean;
}

const WORKER_MAIN = fileURLToPath(new URL('./worker-main.ts', import.meta.url));
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm')).href;
/** The smallest heap a worker gets, MiB (Node itself needs some). */
const MIN_HEAP_MIB = 64;
const STDERR_TAIL = 8192;

/**
 * Creates an executor that runs workflow code in worker processes.
 *
 * @example
 * const executor = withTaskHost(createLocalExecutor(), createProcessHost({ transport, artifacts }));
 */
export function createProcessHost(opts: ProcessHostOptions): Executor {
  const children = new Map<string, ChildProcess>();
  const stopped = new Set<string>();
  const spares = new Map<number, ChildProcess>();
  let closed = false;
  const boot = (heap: number) =>
    spawn(process.execPath, ['--import', TSX, `--max-old-space-size=${heap}`, WORKER_MAIN], {
      cwd: opts.cwd,
      env: process.env,
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      serialization: 'advanced',
    });
  /** A booted spare of this heap size if there is a live one, else a new process. */
  const take = (heap: number): ChildProcess => {
    const spare = spares.get(heap);
    spares.delete(heap);
    if (spare && spare.exitCode === null && spare.signalCode === null && spare.connected) return spare;
    spare?.kill('SIGTERM');
    return boot(heap);
  };
  const prepareSpare = (heap: number, module: string) => {
    if (opts.spares === false || closed || spares.has(heap)) return;
    const spare = boot(heap);
    spare.stderr!.resume();
    spare.once('spawn', () => spare.connected && spare.send({ t: 'preload', module }));
    spare.once('exit', () => spares.get(heap) === spare && spares.delete(heap));
    spares.set(heap, spare);
  };
  return {
    kind: 'process',
    start(lease: LeaseMsg, node: string, report: ExecutorReport) {
      const heap = Math.max(MIN_HEAP_MIB, Math.floor(lease.memoryMiB));
      const child = take(heap);
      children.set(lease.leaseId, child);
      let tail = '';
      child.stderr!.removeAllListeners('data');
      child.stderr!.on('data', (chunk: Buffer) => {
        if (opts.forwardStderr !== false) process.stderr.write(chunk);
        tail = (tail + chunk.toString('utf8')).slice(-STDERR_TAIL);
      });
      const work = lease.work;
      const execution = work.kind === 'task' ? work.execution : undefined;
      const resultSubject =
        work.kind === 'task' ? subjects.result(work.team, work.execution, lease.cluster) : undefined;
      let result: ResultMsg | undefined;
      // The result goes out through the host's durable publisher (the team's results stream, over
      // NATS), and the end is reported once it is kept, as in the in-process task host.
      let kept: Promise<void> = Promise.resolve();
      const send = async (data: Uint8Array) =>
        opts.publishResult
          ? opts.publishResult(resultSubject!, data)
          : opts.transport.publish(resultSubject!, data);
      const publishResult = (data: Uint8Array) => {
        kept = kept
          .then(() => send(data))
          .catch((err: Error) => {
            // Over the message limit (a huge lineage): the result says so instead.
            result = {
              ok: false,
              execution: execution!,
              error: { name: 'TaskError', message: `the result could not be sent: ${err.message}` },
              startedAt,
              endedAt: Date.now(),
            };
            return send(encodeJson(result)).catch(() => undefined);
          });
      };
      const relay = relayForChild(child, opts.transport, opts.artifacts, (subject, data) => {
        if (subject !== resultSubject) return false;
        const p = parseMessage(resultMsg, data);
        if (p.ok) result = p.value;
        publishResult(data);
        return true;
      });
      const startedAt = Date.now();
      const answerOrphans = (orphans: Msg[], error: ErrorMsg) => {
        const endedAt = Date.now();
        for (const msg of orphans) {
          const p = parseMessage(invokeMsg, msg.data);
          if (!p.ok) continue;
          const reply: InvokeReply = {
            lease,
            node,
            results: p.value.executions.map((e) => ({
              ok: false,
              execution: e.execution,
              error,
              startedAt,
              endedAt,
            })),
          };
          opts.transport.respond(msg, encodeJson(reply));
        }
      };
      const begin = () => {
        child.send({ t: 'start', payload: { lease, node } });
        report('running');
        // The spare boots once this worker is up (its first message), not beside it: on a small
        // machine two booting processes slow each other down.
        child.once('message', () =>
          prepareSpare(
            heap,
            lease.work.kind === 'task' || lease.work.kind === 'worker' ? lease.work.module : '',
          ),
        );
      };
      if (child.pid !== undefined && child.connected) begin();
      else child.once('spawn', begin);
      child.once('error', (err) => {
        children.delete(lease.leaseId);
        relay.close();
        report('failed', { reason: `could not start a worker process: ${err.message}` });
      });
      child.once('exit', (code, signal) => {
        children.delete(lease.leaseId);
        const orphans = relay.orphans();
        relay.close();
        if (stopped.delete(lease.leaseId)) {
          // Stopped (preempted, cancelled) while running invocations: they are tried again elsewhere.
          answerOrphans(orphans, {
            name: 'PreemptedError',
            message: 'the worker was stopped while running this',
          });
          return;
        }
        const oom =
          /heap out of memory|Allocation failed/i.test(tail) || signal === 'SIGKILL' || code === 137;
        const failure: ErrorMsg = oom
          ? {
              name: 'OutOfMemoryError',
              message: `the worker process ran out of memory (heap limit ${heap} MiB)`,
              data: { memoryMiB: lease.memoryMiB },
            }
          : {
              name: 'TaskError',
              message: `the worker process exited with ${signal ?? `code ${code}`}: ${lastLine(tail) || 'no error output'}`,
            };
        const endedAt = Date.now();
        // Invocations the worker was running when it died get the failure as their result.
        answerOrphans(orphans, failure);
        if (execution && !result) {
          result = { ok: false, execution, error: failure, startedAt, endedAt };
          publishResult(encodeJson(result));
        }
        void kept.then(() => reportEnd(code, oom, failure));
      });
      const reportEnd = (code: number | null, oom: boolean, failure: ErrorMsg) => {
        if (oom) report('failed', { exitCode: 137, reason: 'OOMKilled' });
        else if (result && !result.ok)
          report('failed', {
            exitCode: code ?? 1,
            reason: `${result.error.name}: ${result.error.message}`.slice(0, 500),
          });
        else if (code === 0) report('succeeded', { exitCode: 0 });
        else report('failed', { exitCode: code ?? 1, reason: failure.message.slice(0, 500) });
      };
    },
    stop(leaseId: string) {
      const child = children.get(leaseId);
      if (!child) return;
      stopped.add(leaseId);
      child.kill('SIGTERM');
    },
    async close() {
      closed = true;
      for (const spare of spares.values()) spare.kill('SIGTERM');
      spares.clear();
      const exits = [...children.values()].map((c) => new Promise((r) => c.once('exit', r)));
      for (const [id, c] of children) {
        stopped.add(id);
        c.kill('SIGTERM');
      }
      await Promise.all(exits);
    },
  };
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return (lines[lines.length - 1] ?? '').slice(0, 300);
}
