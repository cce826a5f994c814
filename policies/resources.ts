/**
 * Resolving what a task asks for into concrete resources: the team's policy defaults, then the profile,
 * then the task's own fields, each overriding the last.
 */
import { PolicyError } from './errors.ts';
import type { ResourcesSpec, SpotPreference } from './kinds.ts';
import type { Platform } from './platform.ts';
import type { GpuOption } from './quantities.ts';

/** Used when neither the task, its profile nor its policy says. */
export const FALLBACK_RESOURCES = { cpuMilli: 1000, memoryMiB: 2048, durationSeconds: 3600 } as const;

/** Concrete resources for one task. */
export interface ResolvedResources {
  cpuMilli: number;
  memoryMiB: number;
  gpu: GpuOption[];
  spot: SpotPreference | undefined;
  durationSeconds: number;
  profile: string | undefined;
  /** Members of a gang; absent or 1: an ordinary task (records stored before gangs have none). */
  nodes?: number;
}

/** A profile name that does not exist, or a team without a policy. */
export class ResolveError extends PolicyError {
  override name = 'ResolveError';
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

/**
 * Applies policy defaults and profiles to what a task asks for.
 *
 * @example
 * resolveResources({ profile: 'gpu-train', memory: 512 * 1024 }, 'research', platform);
 * // { cpuMilli: 96000, memoryMiB: 524288, gpu: [{ model: 'H100', count: 8 }], … }
 */
export function resolveResources(asked: ResourcesSpec, team: string, platform: Platform): ResolvedResources {
  const policy = platform.policyFor(team);
  const layers: ResourcesSpec[] = [];
  const defaults = policy?.defaults;
  if (defaults) {
    if (defaults.profile) layers.push(profile(defaults.profile, platform, 'defaults.profile'));
    layers.push(defaults);
  }
  if (asked.profile) layers.push(profile(asked.profile, platform, 'profile'));
  layers.push(asked);
  const pick = <K extends keyof ResourcesSpec>(key: K): ResourcesSpec[K] =>
    layers.reduce<ResourcesSpec[K]>((v, l) => (l[key] !== undefined ? l[key] : v), undefined);
  return {
    cpuMilli: pick('cpu') ?? FALLBACK_RESOURCES.cpuMilli,
    memoryMiB: pick('memory') ?? FALLBACK_RESOURCES.memoryMiB,
    gpu: pick('gpu') ?? [],
    spot: pick('spot'),
    durationSeconds: pick('duration') ?? FALLBACK_RESOURCES.durationSeconds,
    profile: asked.profile ?? defaults?.profile,
    ...(pick('nodes') !== undefined ? { nodes: pick('nodes')! } : {}),
  };
}

function profile(name: string, platform: Platform, field: string): ResourcesSpec {
  const p = platform.profiles.get(name);
  if (!p) {
    const known = [...platform.profiles.keys()].join(', ') || 'none';
    throw new ResolveError(`unknown profile '${name}' (known: ${known})`, field);
  }
  return p;
}
