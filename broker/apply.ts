/**
 * `gantry apply`: Clusters, ResourcePolicies and ResourceProfiles that an operator changed replace the
 * running broker's, from its next solve cycle, without a restart. `gantry apply` validates the YAML (with
 * file:line errors) and resolves it against the catalog, its PriceCatalogs included, before it sends
 * anything; this checks the message's shape and what only the whole platform can tell (one policy per
 * team), applies everything or nothing, and keeps what it applied in the store, so a broker that takes
 * over (or restarts) serves the same platform.
 */
import { z } from 'zod';
import type { Cluster, Platform, Policy, Profile } from '../policies/index.ts';
import { decodeJson, encodeJson, type Store } from '../protocol/index.ts';

const name = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a lower-case name');

/** The `apply` admin request: resolved objects, as `gantry apply` builds them. */
export const applyMsg = z.strictObject({
  clusters: z
    .array(
      z.looseObject({
        name,
        pools: z.array(z.looseObject({ id: z.string(), name: z.string() })).min(1),
      }),
    )
    .default([]),
  policies: z.array(z.looseObject({ name, teams: z.array(z.string().min(1)).min(1) })).default([]),
  profiles: z.array(z.looseObject({ name: z.string().min(1) })).default([]),
  /** Check only: say what would change, change nothing. */
  dryRun: z.boolean().default(false),
});
export type ApplyMsg = z.output<typeof applyMsg>;

/** What happened to one object. */
export interface Applied {
  kind: 'Cluster' | 'ResourcePolicy' | 'ResourceProfile';
  name: string;
  action: 'created' | 'configured' | 'unchanged';
}

/** Refused as a whole: nothing was applied. */
export class ApplyRefused extends Error {
  override name = 'ApplyRefused';
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

/** Where applied objects live in the broker's store. */
const KEY = {
  Cluster: 'applied.cluster',
  ResourcePolicy: 'applied.policy',
  ResourceProfile: 'applied.profile',
};

/** The store key of a cluster `gantry apply` changed (forgotten with the cluster). */
export const appliedClusterKey = (cluster: string) => `${KEY.Cluster}.${cluster}`;

/** Equal as JSON, whatever the order of keys (the message's schema puts the ones it names first). */
const same = (a: unknown, b: unknown) => canonical(a) === canonical(b);

function canonical(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
      : v,
  );
}

/** What the broker does besides changing `platform` in place. */
export interface ApplyHooks {
  /** Registers a new or changed cluster (inventory, pools, store), as onboarding does. */
  onboard(cluster: Cluster): Promise<void>;
  /** Policies or profiles changed: admission caches go, the next cycle plans with the new ones. */
  reconfigured(): void;
}

/**
 * Applies the objects to `platform` (in place), keeps the changed ones in `store`, and returns what each
 * became; refuses all of them if a team would end up with two policies. With `dryRun`, only says.
 */
export async function applyObjects(
  platform: Platform,
  store: Store | undefined,
  msg: ApplyMsg,
  hooks: ApplyHooks,
): Promise<Applied[]> {
  const clusters = msg.clusters as unknown as Cluster[];
  const policies = msg.policies as unknown as Policy[];
  const profiles = msg.profiles as unknown as Profile[];
  const nextPolicies = merge(platform.policies, policies);
  const owner = new Map<string, string>();
  for (const p of nextPolicies)
    for (const team of p.teams) {
      const other = owner.get(team);
      if (other && other !== p.name)
        throw new ApplyRefused(`team '${team}' would have two policies: ${other} and ${p.name}`, 'policies');
      owner.set(team, p.name);
    }
  const results: Applied[] = [
    ...clusters.map((c) =>
      outcome(
        'Cluster',
        c.name,
        platform.clusters.find((x) => x.name === c.name),
        c,
      ),
    ),
    ...policies.map((p) =>
      outcome(
        'ResourcePolicy',
        p.name,
        platform.policies.find((x) => x.name === p.name),
        p,
      ),
    ),
    ...profiles.map((p) => outcome('ResourceProfile', p.name, platform.profiles.get(p.name), p)),
  ];
  if (msg.dryRun) return results;

  const changed = (kind: Applied['kind'], n: string) =>
    results.some((r) => r.kind === kind && r.name === n && r.action !== 'unchanged');
  const writes: { key: string; value: Uint8Array }[] = [];
  for (const p of policies)
    if (changed('ResourcePolicy', p.name))
      writes.push({ key: `${KEY.ResourcePolicy}.${p.name}`, value: encodeJson(p) });
  for (const p of profiles)
    if (changed('ResourceProfile', p.name))
      writes.push({ key: `${KEY.ResourceProfile}.${p.name}`, value: encodeJson(p) });
  for (const c of clusters)
    if (changed('Cluster', c.name)) writes.push({ key: `${KEY.Cluster}.${c.name}`, value: encodeJson(c) });
  for (const w of writes) await store?.put(w.key, w.value);

  setPolicies(platform, nextPolicies);
  for (const p of profiles) platform.profiles.set(p.name, p);
  for (const c of clusters) if (changed('Cluster', c.name)) await hooks.onboard(c);
  if (results.some((r) => r.action !== 'unchanged')) hooks.reconfigured();
  return results;
}

/**
 * Applies what earlier `gantry apply`s stored over a platform read from files: a broker that restarts
 * or takes over serves what was applied. Returns what it applied, to log.
 */
export async function restoreApplied(
  platform: Platform,
  store: Store,
  hooks: ApplyHooks,
): Promise<Applied[]> {
  const read = async <T>(prefix: string) => (await store.list(prefix)).map((e) => decodeJson(e.value) as T);
  const msg = applyMsg.parse({
    clusters: await read(KEY.Cluster),
    policies: await read(KEY.ResourcePolicy),
    profiles: await read(KEY.ResourceProfile),
  });
  if (msg.clusters.length + msg.policies.length + msg.profiles.length === 0) return [];
  return applyObjects(platform, undefined, msg, hooks);
}

function outcome(kind: Applied['kind'], n: string, before: unknown, after: unknown): Applied {
  return {
    kind,
    name: n,
    action: before === undefined ? 'created' : same(before, after) ? 'unchanged' : 'configured',
  };
}

function merge(current: readonly Policy[], applied: readonly Policy[]): Policy[] {
  const out = current.map((p) => applied.find((a) => a.name === p.name) ?? p);
  for (const a of applied) if (!current.some((p) => p.name === a.name)) out.push(a);
  return out;
}

function setPolicies(platform: Platform, policies: Policy[]): void {
  platform.policies.splice(0, platform.policies.length, ...policies);
  const byTeam = new Map<string, Policy>();
  for (const p of policies) for (const t of p.teams) if (!byTeam.has(t)) byTeam.set(t, p);
  platform.policyFor = (team) => byTeam.get(team);
}
