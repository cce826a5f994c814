/**
 * Agents, one per cluster: register, report capacity, launch leased work through an executor, scale
 * pools through a node provisioner.
 *
 * @example
 * import { createAgent, createSimExecutor, createSimProvisioner } from '../agents/index.ts';
 * const agent = createAgent({ transport, cluster, executor: createSimExecutor(), provisioner: createSimProvisioner(cluster) });
 * await agent.start();
 */
export { createAgent } from './agent.ts';
export type { Agent, AgentOptions, AgentReadiness } from './agent.ts';
export { createAgentMetrics } from './metrics.ts';
export type { AgentMetrics } from './metrics.ts';
export { withTaskHost } from './executor.ts';
export type { Executor, ExecutorReport } from './executor.ts';
export type {
  CloudAdapter,
  CloudInstance,
  ExhaustedKind,
  LaunchOutcome,
  LaunchRefusal,
  NodeEvent,
  NodeProvisioner,
  ProvisionedNode,
} from './provisioner.ts';
export { createCloudProvisioner, createProvisionerCore, MAX_NODES_RETRY_AFTER_MS } from './node-core.ts';
export type {
  CloudProvisioner,
  CloudProvisionerOptions,
  PlannedNode,
  ProvisionerCore,
  ProvisionerCoreOptions,
} from './node-core.ts';
export { createProvisioner, PROVISIONER_KINDS, resolveProvisionerKind } from './provisioner-registry.ts';
export type { ProvisionerDeps, ProvisionerKind } from './provisioner-registry.ts';
export { createSimExecutor } from './sim-executor.ts';
export type { SimExecutorOptions } from './sim-executor.ts';
export { createSimProvisioner } from './sim-provisioner.ts';
export type { SimProvisioner, SimProvisionerOptions } from './sim-provisioner.ts';
export { createLocalExecutor } from './local-executor.ts';
export type { LocalExecutorOptions } from './local-executor.ts';
