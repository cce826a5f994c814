/**
 * Operator requests on `gantry.v1.broker.admin.<verb>`: list and describe clusters, drain and remove
 * them, list requests, leases and nodes, show the platform the broker plans with, and apply changes to
 * it. What `gantry cluster`, `gantry get` and `gantry apply` call.
 */
import type { BudgetStatus } from './budgets.ts';
import { z } from 'zod';
import type { Cluster, Platform } from '../policies/index.ts';
import {
  encodeJson,
  type Msg,
  parseMessage,
  type RunCancelReply,
  type Store,
  type Transport,
} from '../protocol/index.ts';
import { ApplyRefused, applyMsg, applyObjects } from './apply.ts';
import type { Inventory } from './inventory.ts';
import type { BrokerMetrics } from './metrics.ts';
import type { BrokerState } from './state.ts';

export interface AdminContext {
  transport: Transport;
  state: BrokerState;
  inventory: Inventory;
  platform: Platform;
  metrics: BrokerMetrics;
  onboard(cluster: Cluster): Promise<void>;
  forget(name: string): Promise<void>;
  schedule(): void;
  bad(msg: Msg, subject: string, error: { code: string; message: string; field?: string }): void;
  /** Cancels a run: withdraws its pending requests, stops its leases, says which. */
  cancelRun(runId: string, reason?: string): RunCancelReply;
  /** Every team budget: caps, spend, committed and what is left. */
  budgets(): BudgetStatus[];
  /** The broker's store, where applied objects are kept. */
  store: Store;
  /** Policies or profiles changed (`apply`): caches go, a cycle is scheduled. */
  reconfigured(): void;
}

const byName = z.strictObject({ name: z.string().min(1) });
const cancelRunMsg = z.strictObject({
  run: z.string().min(1).max(200),
  reason: z.string().max(500).optional(),
});
// The resolved cluster made by `gantry cluster onboard` (which validated the YAML); only operators may
// publish admin subjects, by NATS permissions.
const onboardMsg = z.strictObject({
  cluster: z.looseObject({
    name: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/),
    pools: z.array(z.looseObject({ id: z.string(), name: z.string() })).min(1),
  }),
});
const listing = z.strictObject({
  limit: z.int().positive().max(100_000).default(1000),
  state: z.string().optional(),
});

/** Answers one admin request. */
export function handleAdmin(msg: Msg, ctx: AdminContext): void {
  const verb = msg.subject.split('.').slice(4).join('.');
  const reply = (body: unknown) => ctx.transport.respond(msg, encodeJson({ ok: true, ...(body as object) }));
  const named = () => {
    const p = parseMessage(byName, msg.data);
    if (!p.ok) {
      ctx.bad(msg, msg.subject, p.error);
      return undefined;
    }
    const c = ctx.inventory.clusters.get(p.value.name);
    if (!c)
      ctx.bad(msg, msg.subject, {
        code: 'unknown-cluster',
        message: `no cluster ${p.value.name}`,
        field: 'name',
      });
    return c;
  };
  switch (verb) {
    case 'clusters':
      return reply({ clusters: [...ctx.inventory.clusters.values()].map(summary) });
    case 'describe': {
      const c = named();
      if (!c) return;
      const leases = ctx.state.activeOn(c.name);
      return reply({
        cluster: {
          ...summary(c),
          pools: c.declared.pools,
          nodes: [...c.nodes.values()],
          planned: [...c.planned.keys()],
          activeLeases: leases.length,
        },
      });
    }
    case 'drain': {
      const c = named();
      if (!c) return;
      c.draining = true;
      return reply({ cluster: summary(c) });
    }
    case 'remove': {
      const c = named();
      if (!c) return;
      if (ctx.state.activeOn(c.name).length > 0) {
        return ctx.bad(msg, msg.subject, {
          code: 'busy',
          message: `cluster ${c.name} still runs work: drain it first and wait`,
          field: 'name',
        });
      }
      ctx.inventory.remove(c.name);
      const i = ctx.platform.clusters.findIndex((x) => x.name === c.name);
      if (i >= 0) ctx.platform.clusters.splice(i, 1);
      void ctx
        .forget(c.name)
        .then(() => reply({ removed: c.name }))
        .catch((err: Error) =>
          ctx.bad(msg, msg.subject, { code: 'store', message: `could not forget ${c.name}: ${err.message}` }),
        );
      return;
    }
    case 'requests':
    case 'leases': {
      const p = parseMessage(listing, msg.data.length ? msg.data : encodeJson({}));
      if (!p.ok) return ctx.bad(msg, msg.subject, p.error);
      const rows = verb === 'requests' ? [...ctx.state.requests.values()] : [...ctx.state.leases.values()];
      const filtered = rows.filter((r) => !p.value.state || r.state === p.value.state);
      return reply({ total: filtered.length, [verb]: filtered.slice(-p.value.limit) });
    }
    case 'onboard': {
      const p = parseMessage(onboardMsg, msg.data);
      if (!p.ok) return ctx.bad(msg, msg.subject, p.error);
      const cluster = p.value.cluster as unknown as Cluster;
      void ctx
        .onboard(cluster)
        .then(() => {
          ctx.schedule();
          reply({ cluster: summary(ctx.inventory.clusters.get(cluster.name)!) });
        })
        .catch((err: Error) =>
          ctx.bad(msg, msg.subject, {
            code: 'store',
            message: `could not onboard ${cluster.name}: ${err.message}`,
          }),
        );
      return;
    }
    case 'nodes':
      return reply({
        nodes: [...ctx.inventory.clusters.values()].flatMap((c) =>
          [...c.nodes.values()].map((n) => ({ cluster: c.name, ...n })),
        ),
      });
    case 'budgets':
      return reply({ budgets: ctx.budgets() });
    case 'platform':
      return reply({
        clusters: [...ctx.inventory.clusters.values()].map((c) => c.declared),
        policies: ctx.platform.policies,
        profiles: [...ctx.platform.profiles.values()],
      });
    case 'apply': {
      const p = parseMessage(applyMsg, msg.data);
      if (!p.ok) return ctx.bad(msg, msg.subject, p.error);
      void applyObjects(ctx.platform, ctx.store, p.value, {
        onboard: ctx.onboard,
        reconfigured: ctx.reconfigured,
      })
        .then((applied) => reply({ applied, dryRun: p.value.dryRun }))
        .catch((err: Error) =>
          ctx.bad(msg, msg.subject, {
            code: err instanceof ApplyRefused ? 'refused' : 'store',
            message: err instanceof ApplyRefused ? err.message : `could not apply: ${err.message}`,
            ...(err instanceof ApplyRefused ? { field: err.field } : {}),
          }),
        );
      return;
    }
    case 'cancel-run': {
      const p = parseMessage(cancelRunMsg, msg.data);
      if (!p.ok) return ctx.bad(msg, msg.subject, p.error);
      return reply(ctx.cancelRun(p.value.run, p.value.reason));
    }
    case 'stats':
      return reply({
        counts: ctx.state.counts(),
        queue: ctx.state.queue.length,
        held: ctx.state.held.size,
        activeLeases: ctx.state.activeLeases(),
      });
    default:
      return ctx.bad(msg, msg.subject, {
        code: 'unknown-verb',
        message: `no admin verb '${verb}'`,
        field: 'subject',
      });
  }
}

function summary(c: import('./inventory.ts').ClusterState) {
  return {
    name: c.name,
    provider: c.declared.provider,
    region: c.declared.region,
    healthy: c.healthy,
    draining: c.draining,
    agentId: c.agentId,
    lastHeartbeat: c.lastHeartbeat,
    nodes: c.nodes.size,
    pools: c.declared.pools.map((p) => p.name),
  };
}
