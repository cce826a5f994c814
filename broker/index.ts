/**
 * The broker: inventory from agents' heartbeats, requests checked against policy, solve cycles that lease
 * work to clusters, durable state, leadership between replicas, metrics.
 *
 * @example
 * import { createBroker } from '../broker/index.ts';
 * const broker = createBroker({ transport, store, platform, backends: await defaultBackends() });
 * await broker.start();
 */
export { createBroker } from './broker.ts';
export type { Broker, BrokerOptions } from './broker.ts';
export { admit } from './admission.ts';
export type { Refusal } from './admission.ts';
export { collectProcessMetrics, createBrokerMetrics, HELD_REASONS, NODE_STATES } from './metrics.ts';
export type { BrokerMetrics, HeldReason, MetricsLabels } from './metrics.ts';
export { heldReason, nodeState } from './fleet-gauges.ts';
export { Inventory } from './inventory.ts';
export type { ClusterState } from './inventory.ts';
export { BrokerState } from './state.ts';
export { loadRecords, readLifecycle, RecordWriter, requestKey } from './records.ts';
export type { LeaseRecord, LifecycleEvent, RequestRecord, StoredRequest } from './records.ts';
export { Leadership } from './leader.ts';
export { serveMetrics } from './metrics-http.ts';
export type { Readiness, ServeMetricsOptions } from './metrics-http.ts';
export { costReport, DIMENSIONS, greedyComparison, onDemandPrices, onDemandRatio } from './cost-report.ts';
export type { CostReport, CostRow, Dimension } from './cost-report.ts';
export { usageCost } from './ledger.ts';
export type { LedgerEntry, NodeLife, NodeRef, TaskUsage } from './ledger.ts';
