/**
 * The real backends: the Kubernetes executor, and the EC2 and GCE node provisioners. Kept apart from
 * `index.ts` so embedded mode and worker processes never load the Kubernetes and cloud SDKs; only
 * `gantry agent` and tests import this.
 *
 * @example
 * import { createKubeExecutor, createEc2Provisioner } from '../agents/cloud-index.ts';
 */
export { createKubeExecutor, leasePod, podName, poolOf, poolSelector } from './kube-executor.ts';
export type { KubeExecutor, KubeExecutorOptions, KubeNode } from './kube-executor.ts';
export {
  containerTaskSpec,
  INPUTS_CONTAINER,
  OUTPUTS_CONTAINER,
  PROGRAM_CONTAINER,
} from './kube-container-pod.ts';
export type { ContainerTaskSpec } from './kube-container-pod.ts';
export { waitForContainerEnd } from './kube-container-watch.ts';
export type { ContainerEnd, ContainerWaitOptions } from './kube-container-watch.ts';
export { createKubeNodeProvisioner } from './kube-nodes.ts';
export type { KubeNodeProvisionerOptions } from './kube-nodes.ts';
export {
  createEc2Provisioner,
  DEFAULT_EC2_RETRY_AFTER,
  EC2_TAGS,
  Ec2ProvisionerError,
  LAUNCH_TEMPLATE_LABEL,
  refreshSpotPrices,
} from './ec2-provisioner.ts';
export type { Ec2Provisioner, Ec2ProvisionerOptions, Ec2RetryAfter } from './ec2-provisioner.ts';
export { createGceProvisioner, GceApiError, GceConfigError, GceError } from './gce-provisioner.ts';
export type { GceProvisioner, GceProvisionerOptions } from './gce-provisioner.ts';
export type { NodeCapacity } from './executor.ts';
