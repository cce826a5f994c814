/**
 * Admission: a request's resources are parsed, resolved with the team's defaults and profiles, and
 * checked against its ResourcePolicy. An override beyond policy is refused with the reason — never
 * silently clamped.
 */
import {
  resolveResources,
  ResolveError,
  resourcesSpec,
  type Platform,
  type ResolvedResources,
} from '../policies/index.ts';
import type { RequestMsg } from '../protocol/index.ts';

/** Why a request was refused: a code for programs, a message for people, the field at fault. */
export interface Refusal {
  code: 'no-policy' | 'bad-resources' | 'policy';
  message: string;
  field?: string;
}

/**
 * Resolves and checks a request.
 *
 * @example
 * const r = admit(msg, platform);
 * if ('code' in r) reply({ ok: false, error: r });
 */
export function admit(msg: RequestMsg, platform: Platform): ResolvedResources | Refusal {
  const policy = platform.policyFor(msg.team);
  if (!policy)
    return { code: 'no-policy', message: `team '${msg.team}' has no ResourcePolicy`, field: 'team' };
  const parsed = resourcesSpec.safeParse(msg.resources);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = ['resources', ...issue.path.map(String)].join('.');
    return {
      code: 'bad-resources',
      message: `${field}: ${issue.message.replace(/^Invalid input: /, '')}`,
      field,
    };
  }
  let r: ResolvedResources;
  try {
    r = resolveResources(parsed.data, msg.team, platform);
  } catch (err) {
    if (err instanceof ResolveError)
      return { code: 'bad-resources', message: err.message, field: `resources.${err.field}` };
    throw err;
  }
  const what = msg.override ? 'override' : 'request';
  const refuse = (field: string, why: string): Refusal => ({
    code: 'policy',
    message: `${what} exceeds policy ${policy.name}: ${why}`,
    field: `resources.${field}`,
  });
  const limits = policy.limits;
  if (limits?.cpu !== undefined && r.cpuMilli > limits.cpu)
    return refuse('cpu', `cpu ${r.cpuMilli / 1000} > limit ${limits.cpu / 1000}`);
  if (limits?.memory !== undefined && r.memoryMiB > limits.memory) {
    return refuse('memory', `memory ${fmtGi(r.memoryMiB)} > limit ${fmtGi(limits.memory)}`);
  }
  const maxGpus = Math.max(0, ...r.gpu.map((g) => g.count));
  if (limits?.gpus !== undefined && maxGpus > limits.gpus)
    return refuse('gpu', `${maxGpus} GPUs > limit ${limits.gpus}`);
  const allowed = policy.allowed?.gpuModels as string[] | undefined;
  if (allowed && r.gpu.length > 0 && r.gpu.every((g) => g.model !== '*' && !allowed.includes(g.model))) {
    return refuse(
      'gpu',
      `GPU ${r.gpu.map((g) => g.model).join('|')} not in allowed models ${allowed.join(', ')}`,
    );
  }
  if (r.spot === 'required' && policy.spot === 'never') return refuse('spot', 'spot is never allowed');
  for (const q of policy.quotas) {
    if (q.resource !== 'gpu') continue;
    const cap = q.nominal + (q.borrowingLimit ?? 0);
    const asks = r.gpu.filter((g) => q.model === undefined || g.model === q.model || g.model === '*');
    if (asks.length > 0 && asks.length === r.gpu.length && asks.every((g) => g.count > cap)) {
      return refuse('gpu', `${asks[0]!.count} GPUs > ${q.model ?? 'GPU'} quota of ${cap}`);
    }
  }
  // A request may say `spot: never` under any policy; it may not ask for more spot than the policy allows.
  if (r.spot === undefined && policy.spot !== 'allowed') r = { ...r, spot: policy.spot };
  return r;
}

/** Default rendezvous port of a gang (PyTorch's `torch.distributed` convention). */
export const GANG_PORT = 29500;

/**
 * Checks a request's gang against its resources: `resources.nodes` > 1 is one member of a gang and must
 * say which (`gang: { id, rank }`, rank below `nodes`); a gang needs `nodes` > 1.
 */
export function admitGang(msg: RequestMsg, r: ResolvedResources): Refusal | undefined {
  const nodes = r.nodes ?? 1;
  if (nodes > 1 && !msg.gang)
    return {
      code: 'bad-resources',
      message: `resources.nodes: ${nodes} nodes is a gang; each member's request needs gang { id, rank }`,
      field: 'gang',
    };
  if (msg.gang && nodes < 2)
    return {
      code: 'bad-resources',
      message: `gang: a gang needs resources.nodes of 2 or more (got ${nodes})`,
      field: 'resources.nodes',
    };
  if (msg.gang && msg.gang.rank >= nodes)
    return {
      code: 'bad-resources',
      message: `gang.rank: rank ${msg.gang.rank} of a gang of ${nodes} (ranks are 0–${nodes - 1})`,
      field: 'gang.rank',
    };
  return undefined;
}

function fmtGi(mib: number): string {
  return `${Number((mib / 1024).toFixed(1))}Gi`;
}
