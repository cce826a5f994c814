/**
 * Executors run leased work on a node: `sim` (a timer and an outcome), `local` (child processes on this
 * machine), `kubernetes` (pods).
 */
import type { LeaseMsg, TaskState } from '../protocol/index.ts';

/**
 * What an executor reports about one lease: state changes, with an exit code or reason at the end, and
 * how long the work ran on its cluster's clock (`ranMs`, ms) when the executor knows (simulated time).
 */
export type ExecutorReport = (
  state: TaskState,
  info?: { exitCode?: number; reason?: string; ranMs?: number },
) => void;

/** What is free on a node for Gantry's work, as the executor's platform sees it (Kubernetes). */
export interface NodeCapacity {
  cpuMilli: number;
  memoryMiB: number;
  gpuCount: number;
  ready: boolean;
}

/** Runs work for leases. Each lease is started at most once. */
export interface Executor {
  readonly kind: string;
  /** Starts the lease's work on `node`; reports `running`, then `succeeded` or `failed`. */
  start(lease: LeaseMsg, node: string, report: ExecutorReport): void;
  /** Stops a lease's work (node preempted, lease cancelled); the caller reports the outcome. */
  stop(leaseId: string): void;
  /** Stops everything (agent shutdown). */
  close(): Promise<void>;
  /** Resolves when what the executor runs work on answers now; rejects saying why not (`/readyz`). */
  ping?(): Promise<void>;
  /**
   * What is free on `node` for Gantry (allocatable minus other workloads), when the executor knows
   * better than the pool's shape; the agent reports it in heartbeats.
   */
  capacity?(node: string): NodeCapacity | undefined;
}

/**
 * An executor that runs workflow code (`task` and `worker` leases) in `tasks` — a task host, in this
 * process or in worker processes — and every other lease in `executor`.
 *
 * @example
 * const executor = withTaskHost(createSimExecutor({ speedup }), createTaskHost({ transport, artifacts }));
 */
export function withTaskHost(executor: Executor, tasks: Executor): Executor {
  return {
    kind: executor.kind,
    start(lease, node, report) {
      const kind = lease.work.kind;
      (kind === 'task' || kind === 'worker' ? tasks : executor).start(lease, node, report);
    },
    stop(leaseId) {
      // Each ignores leases it does not run.
      executor.stop(leaseId);
      tasks.stop(leaseId);
    },
    async close() {
      await Promise.all([executor.close(), tasks.close()]);
    },
    ...(executor.capacity ? { capacity: executor.capacity.bind(executor) } : {}),
    ...(executor.ping ? { ping: executor.ping.bind(executor) } : {}),
  };
}
