/**
 * Cycle scheduling: a cycle starts a window after the first pending request, or at once when a full
 * batch waits; one runs at a time, and its result is announced once it is durable.
 */
import { createBudgetGate } from './budget-gate.ts';
import type { BrokerContext } from './context.ts';
import { runCycle } from './cycle.ts';
import { couldFitOutsidePlan } from './feasible.ts';
import { observePlan } from './fleet-gauges.ts';
import type { RequestRecord } from './records.ts';

/** The cycle scheduler of a broker; see {@link createScheduler}. */
export interface Scheduler {
  /** Starts a cycle when one is due (or resolves the idle waiters when nothing is queued). */
  schedule(): void;
  /** Cancels the next cycle and waits for the running one and its announcements. */
  stop(): Promise<void>;
  /** Resolves when no request is queued and no cycle runs. */
  idle(): Promise<void>;
}

/** A scheduler over the context's queue; `announce` tells the world what a durable cycle decided. */
export function createScheduler(
  ctx: BrokerContext,
  deps: { announce(result: ReturnType<typeof runCycle>): void },
): Scheduler {
  const { state, metrics, log, clock, writer, inventory, platform, opts, maxBatch, windowMs } = ctx;
  const withinBudgets = createBudgetGate(ctx);
  let cycleNo = 0;
  let cycleTimer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const inflight: Promise<void>[] = [];
  let idleWaiters: (() => void)[] = [];

  function schedule(): void {
    metrics.queueDepth.set(state.queue.length + state.held.size);
    if (!ctx.serving || running) return;
    if (state.queue.length >= maxBatch) {
      if (cycleTimer) clearTimeout(cycleTimer);
      cycleTimer = undefined;
      setImmediate(cycle);
    } else if (state.queue.length > 0 && !cycleTimer) {
      cycleTimer = setTimeout(cycle, windowMs);
    } else if (state.queue.length === 0) {
      for (const w of idleWaiters) w();
      idleWaiters = [];
    }
  }

  function cycle(): void {
    cycleTimer = undefined;
    if (running || !ctx.serving) return;
    const ids = [...new Set(state.queue.splice(0, maxBatch))];
    running = runOneCycle(ids)
      .catch((err: Error) => {
        log.error({ err: err.message }, 'cycle failed; its requests wait for the next one');
        const queued = new Set(state.queue);
        for (const id of ids)
          if (state.requests.get(id)?.state === 'pending' && !queued.has(id)) state.queue.push(id);
      })
      .finally(() => {
        running = undefined;
        schedule();
      });
  }

  /** One cycle over `ids`, taken from the head of the queue. */
  async function runOneCycle(ids: readonly string[]): Promise<void> {
    const started = clock();
    const { batch, room } = withinBudgets(
      ids.map((i) => state.requests.get(i)).filter((r): r is RequestRecord => r?.state === 'pending'),
    );
    if (batch.length === 0) return;
    const number = ++cycleNo;
    const result = runCycle({
      number,
      batch,
      budgetRoom: room,
      state,
      inventory,
      platform,
      backends: opts.backends,
      now: clock(),
      leaseTtlMs: opts.leaseTtlMs ?? 3_600_000,
      timeBudgetMs: ctx.solveBudgetMs,
      newId: ctx.newId,
      instance: ctx.instance,
      couldFitElsewhere: (r) => couldFitOutsidePlan(r, inventory, platform),
    });
    // Durable before anyone hears of the leases. The write runs while the next cycle plans (at most
    // two writes in flight), so the store's latency does not hold up placement.
    const durable = writer.flushDurably(
      () => ctx.serving,
      (err) => log.warn({ err: err.message }, 'state write failed; retrying'),
    );
    const announce = durable.then((ok) => {
      // A broker deposed meanwhile says nothing: the new leader loads these leases and announces them.
      if (ok && ctx.serving) deps.announce(result);
    });
    inflight.push(announce);
    if (inflight.length > 1) await inflight.shift();
    metrics.cycles.inc();
    metrics.leases.inc(result.leases.length);
    metrics.solveSeconds.observe(result.solveMs / 1000);
    metrics.cycleSeconds.observe((clock() - started) / 1000);
    metrics.activeLeases.set(state.activeLeases());
    observePlan(metrics, result.plan);
    log.info(
      {
        cycle: number,
        tasks: result.tasks,
        leases: result.leases.length,
        held: result.held,
        solveMs: Math.round(result.solveMs),
        backend: result.backend,
      },
      'cycle',
    );
  }

  return {
    schedule,
    async stop() {
      if (cycleTimer) clearTimeout(cycleTimer);
      cycleTimer = undefined;
      await running;
      await Promise.all(inflight.splice(0));
    },
    idle() {
      if (state.queue.length === 0 && !running) return Promise.all(inflight).then(() => undefined);
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
  };
}
