/**
 * One registry from a cluster to the provisioner that buys its nodes. The Cluster's `provider` names
 * its cloud's adapter (`aws` → EC2, `gcp` → GCE); `sim` is the simulated cloud, `kubernetes` follows
 * nodes managed outside Gantry. The cloud SDKs load only when their adapter is made.
 */
import type { Logger } from 'pino';
import type { Cluster } from '../policies/index.ts';
import type { Ec2ProvisionerOptions } from './ec2-provisioner.ts';
import type { GceProvisionerOptions } from './gce-provisioner.ts';
import type { KubeExecutor } from './kube-executor.ts';
import type { NodeProvisioner } from './provisioner.ts';
import { createSimProvisioner } from './sim-provisioner.ts';

/** What `gantry agent --provisioner` accepts: `cloud` is the adapter of the cluster's provider. */
export const PROVISIONER_KINDS = ['sim', 'ec2', 'gce', 'kubernetes', 'cloud'] as const;
export type ProvisionerKind = (typeof PROVISIONER_KINDS)[number];

/** The adapter of each provider whose nodes Gantry buys itself. */
const CLOUD_ADAPTER: Partial<Record<Cluster['provider'], 'ec2' | 'gce'>> = { aws: 'ec2', gcp: 'gce' };

/** What the adapters need beyond the cluster. */
export interface ProvisionerDeps {
  speedup?: number;
  logger?: Logger;
  ec2?: Omit<Ec2ProvisionerOptions, 'logger'>;
  gce?: Omit<GceProvisionerOptions, 'logger'>;
  /** The Kubernetes executor whose node watch a `kubernetes` provisioner follows. */
  kubeExecutor?: KubeExecutor;
}

/**
 * The provisioner kind for a cluster, or why that kind cannot serve it (one line for the CLI).
 *
 * @example
 * resolveProvisionerKind(awsCluster, 'cloud'); // { ok: true, kind: 'ec2' }
 */
export function resolveProvisionerKind(
  cluster: Cluster,
  requested: string,
): { ok: true; kind: Exclude<ProvisionerKind, 'cloud'> } | { ok: false; message: string } {
  if (!(PROVISIONER_KINDS as readonly string[]).includes(requested))
    return {
      ok: false,
      message: `--provisioner must be ${PROVISIONER_KINDS.join(', ')}, not '${requested}'`,
    };
  const adapter = CLOUD_ADAPTER[cluster.provider];
  if (requested === 'cloud') {
    if (!adapter)
      return {
        ok: false,
        message: `cluster ${cluster.name} has provider ${cluster.provider}: Gantry buys nodes only for aws (ec2) and gcp (gce); use --provisioner sim or kubernetes`,
      };
    return { ok: true, kind: adapter };
  }
  if ((requested === 'ec2' || requested === 'gce') && adapter !== requested)
    return {
      ok: false,
      message: `--provisioner ${requested} buys ${requested === 'ec2' ? 'aws' : 'gcp'} nodes; cluster ${cluster.name} has provider ${cluster.provider}`,
    };
  return { ok: true, kind: requested as Exclude<ProvisionerKind, 'cloud'> };
}

/**
 * Makes the provisioner of `kind` for a cluster.
 *
 * @example
 * const provisioner = await createProvisioner(cluster, 'ec2', { ec2: { launchTemplate: 'gantry-cpu' } });
 */
export async function createProvisioner(
  cluster: Cluster,
  kind: Exclude<ProvisionerKind, 'cloud'>,
  deps: ProvisionerDeps = {},
): Promise<NodeProvisioner> {
  const logger = deps.logger ? { logger: deps.logger } : {};
  switch (kind) {
    case 'sim':
      return createSimProvisioner(cluster, { speedup: deps.speedup ?? 1 });
    case 'ec2': {
      const { createEc2Provisioner } = await import('./ec2-provisioner.ts');
      return createEc2Provisioner(cluster, { ...deps.ec2, ...logger });
    }
    case 'gce': {
      const { createGceProvisioner } = await import('./gce-provisioner.ts');
      return createGceProvisioner(cluster, { ...deps.gce, ...logger });
    }
    case 'kubernetes': {
      if (!deps.kubeExecutor)
        throw new Error(`cluster ${cluster.name}: the kubernetes provisioner needs the Kubernetes executor`);
      const { createKubeNodeProvisioner } = await import('./kube-nodes.ts');
      return createKubeNodeProvisioner(deps.kubeExecutor);
    }
  }
}
