/**
 * Executors run leased work on a node: `sim` (a timer and an outcome), `local` (child processes on this
 * machine). Kubernetes comes behind the same interface.
 */
import type { LeaseMsg, TaskState } from '../protocol/index.ts';

/** What an executor reports about one lease: state changes, with an exit code or reason at the end. */
export type ExecutorReport = (state: TaskState, info?: { exitCode?: number; reason?: string }) => void;

/** Runs work for leases. Each lease is started at most once. */
export interface Executor {
  readonly kind: string;
  /** Starts the lease's work on `node`; reports `running`, then `succeeded` or `failed`. */
  start(lease: LeaseMsg, node: string, report: ExecutorReport): void;
  /** Stops a lease's work (node preempted, lease cancelled); the caller reports the outcome. */
  stop(leaseId: string): void;
  /** Stops everything (agent shutdown). */
  close(): Promise<void>;
}
