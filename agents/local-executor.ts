/**
 * The local executor: each lease's work is a child process on this machine. A process killed by the
 * kernel's OOM killer (SIGKILL with exit 137) is reported as `OOMKilled`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { LeaseMsg } from '../protocol/index.ts';
import type { Executor, ExecutorReport } from './executor.ts';

/** Options of {@link createLocalExecutor}. */
export interface LocalExecutorOptions {
  /** Working directory of the processes. Default: the agent's. */
  cwd?: string;
  /** Runs workflow code (`task` and `worker` leases) in worker processes; see runtime/process-host.ts. */
  tasks?: Executor;
}

/**
 * Creates an executor that runs `process` work as child processes.
 *
 * @example
 * const executor = createLocalExecutor();
 */
export function createLocalExecutor(opts: LocalExecutorOptions = {}): Executor {
  const children = new Map<string, ChildProcess>();
  return {
    kind: 'local',
    start(lease: LeaseMsg, node: string, report: ExecutorReport) {
      const work = lease.work;
      if (work.kind !== 'process') {
        report('failed', { reason: `the local executor cannot run ${work.kind} work` });
        return;
      }
      const child = spawn(work.command, work.args, {
        cwd: opts.cwd,
        env: { ...process.env, ...work.env, GANTRY_LEASE_ID: lease.leaseId, GANTRY_NODE: node },
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      children.set(lease.leaseId, child);
      child.once('spawn', () => report('running'));
      child.once('error', (err) => {
        children.delete(lease.leaseId);
        report('failed', { reason: `could not start ${work.command}: ${err.message}` });
      });
      child.once('exit', (code, signal) => {
        children.delete(lease.leaseId);
        if (code === 0) report('succeeded', { exitCode: 0 });
        else if (signal === 'SIGKILL' || code === 137)
          report('failed', { exitCode: 137, reason: 'OOMKilled' });
        else
          report('failed', {
            exitCode: code ?? 1,
            reason: signal ? `killed by ${signal}` : `exit code ${code}`,
          });
      });
    },
    stop(leaseId: string) {
      children.get(leaseId)?.kill('SIGTERM');
    },
    async close() {
      for (const c of children.values()) c.kill('SIGTERM');
      children.clear();
    },
  };
}
