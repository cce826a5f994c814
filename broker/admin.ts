/**
 * Operator requests on `gantry.v1.broker.admin.<verb>`: list and describe clusters, drain, undrain and
 * remove them, list requests, leases and nodes, show the platform the broker plans with, and apply changes to
 * it. What `gantry cluster`, `gantry get` and `gantry apply` call.
 */
import type { BudgetStatus } from './budgets.ts';
import { z } from 'zod';
import { pageOf } from './admin-page.ts';
import type { Cluster, Platform } from '../policies/index.ts';
import {
  decodeJson,
  encodeJson,
  type Msg,
  parseMessage,
  type RunCancelReply,
  type Store,
  stopReply,
  subjects,
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
const removeMsg = z.strictObject({ name: z.string().min(1), force: z.boolean().default(false) });
/** How long `remove` waits for the agent to terminate nodes and answer, ms. */
const STOP_TIMEOUT_MS = 60_000;
// The resolved cluster made by `gantry cluster onboard` (which validated the YAML); only operators may
// publish admin subjects, by NATS permissions.
const onboardMsg = z.strictObject({
  cluster: z.looseObject({
    name: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/),
    pools: z.array(z.looseObject({ id: z.string(), name: z.string() })).min(1),
  }),
});
const listing = z.strictObject({
  limit: z.int().positive().max(1_000_000).default(1000),
  state: z.string().optional(),
  /** Newest rows to skip: where the page starts (the previous answer's `next`). */
  offset: z.int().nonnegative().default(0),
});

/** Answers one admin request. */
export function handleAdmin(msg: Msg, ctx: AdminContext): void {
  const verb = msg.subject.split('.').slice(4).join('.');
  const reply = (body: unknown) => ctx.transport.respond(msg, encodeJson({ ok: true, ...(body as object) }));
  const named = (schema: typeof byName | typeof removeMsg = byName) => {
    const p = parseMessage(schema, msg.data);
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
      return reply({
        cluster: {
          ...summary(c),
          pools: c.declared.pools,
          nodes: [...c.nodes.values()],
          planned: [...c.planned.keys()],
          activeLeases: ctx.state.activeCount(c.name),
        },
      });
    }
    case 'drain':
    case 'undrain': {
      const c = named();
      if (!c) return;
      c.draining = verb === 'drain';
      // Undrained: what waited for this cluster may go there now.
      if (!c.draining) ctx.schedule();
      return reply({ cluster: summary(c) });
    }
    case 'remove':
      return remove(msg, ctx, named(removeMsg), parseMessage(removeMsg, msg.data));
    case 'requests':
    case 'leases': {
      const p = parseMessage(listing, msg.data.length ? msg.data : encodeJson({}));
      if (!p.ok) return ctx.bad(msg, msg.subject, p.error);
      const rows = verb === 'requests' ? [...ctx.state.requests.values()] : [...ctx.state.leases.values()];
      const filtered = rows.filter((r) => !p.value.state || r.state === p.value.state);
      // Answers stay under the payload limit: the caller asks again from `next`.
      const page = pageOf(filtered, p.value);
      const next = page.next === undefined ? '' : `,"next":${page.next}`;
      return ctx.transport.respond(
        msg,
        new TextEncoder().encode(
          `{"ok":true,"total":${filtered.length}${next},"${verb}":[${page.json.join(',')}]}`,
        ),
      );
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

/**
 * Removes a cluster: only once drained, with no work left and no node Gantry bought still running
 * (`force` has the agent terminate those first). The agent is told to stop either way.
 */
function remove(
  msg: Msg,
  ctx: AdminContext,
  c: ReturnType<Inventory['clusters']['get']>,
  parsed: ReturnType<typeof parseMessage<typeof removeMsg>>,
): void {
  if (!c || !parsed.ok) return;
  const force = parsed.value.force;
  const refuse = (code: string, message: string) =>
    ctx.bad(msg, msg.subject, { code, message, field: 'name' });
  if (!c.draining)
    return refuse(
      'not-drained',
      `cluster ${c.name} is not drained: gantry cluster drain ${c.name}, let its work finish, then remove it`,
    );
  if (ctx.state.activeCount(c.name) > 0)
    return refuse('busy', `cluster ${c.name} still runs work: drain it first and wait`);
  const bought = boughtNodes(c);
  if (bought.length > 0 && !force)
    return refuse(
      'nodes-running',
      `cluster ${c.name} still has ${bought.length} node(s) Gantry bought: ${bought.join(', ')} (--force terminates them first)`,
    );
  void (async () => {
    let terminated: string[] = [];
    let agentStopped = false;
    try {
      const reply = await ctx.transport.request(
        subjects.stop(c.name),
        encodeJson({ reason: `cluster ${c.name} removed`, terminate: bought }),
        { timeoutMs: STOP_TIMEOUT_MS },
      );
      const answer = stopReply.safeParse(decodeJson(reply.data));
      if (!answer.success) throw new Error('the agent answered something else');
      if (answer.data.failed.length > 0)
        return refuse(
          'terminate-failed',
          `cluster ${c.name}: could not terminate ${answer.data.failed.map((f) => `${f.node} (${f.reason})`).join(', ')}; the cluster stays`,
        );
      terminated = answer.data.terminated;
      agentStopped = true;
    } catch (err) {
      // Nothing left to terminate: an agent that is gone already is fine.
      if (bought.length > 0)
        return refuse(
          'agent-unreachable',
          `cluster ${c.name}: its agent did not answer (${(err as Error).message}), so ${bought.join(', ')} could not be terminated; start the agent or terminate them in the cloud, then remove again`,
        );
    }
    ctx.inventory.remove(c.name);
    const i = ctx.platform.clusters.findIndex((x) => x.name === c.name);
    if (i >= 0) ctx.platform.clusters.splice(i, 1);
    try {
      await ctx.forget(c.name);
    } catch (err) {
      return ctx.bad(msg, msg.subject, {
        code: 'store',
        message: `could not forget ${c.name}: ${(err as Error).message}`,
      });
    }
    ctx.transport.respond(msg, encodeJson({ ok: true, removed: c.name, terminated, agentStopped }));
  })();
}

/** Nodes Gantry bought for the cluster that still run or are on their way: they carry a planned id. */
function boughtNodes(c: NonNullable<ReturnType<Inventory['clusters']['get']>>): string[] {
  const nodes = [...c.nodes.values()].filter((n) => n.plannedId).map((n) => n.name);
  const reported = new Set([...c.nodes.values()].flatMap((n) => (n.plannedId ? [n.plannedId] : [])));
  return [...nodes, ...[...c.planned.keys()].filter((id) => !reported.has(id))];
}
