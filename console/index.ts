/**
 * The Gantry console: a web app (React, built by Vite into `console/dist`) over the history API and
 * the broker's live state, served by `gantry up`, `gantry broker` and `gantry demo --console-port`.
 *
 * @example
 * import { askOver, consoleApp } from '../console/index.ts';
 * const app = consoleApp({ db: history.db, ask: askOver(transport), broker, platform });
 */
export { consoleApp, DIST } from './server.ts';
export type { ConsoleOptions } from './server.ts';
export { askOver, BrokerRefused, clusters, queue, spendRate } from './live.ts';
export type { AskBroker, SpendRate } from './live.ts';
export { checkTokens, isLoopback, rightsOf } from './auth.ts';
export type { ConsoleTokens, Right } from './auth.ts';
export { executionCursor, ExecutionQueryError, runExecutions, runRecord, runTasks } from './runs.ts';
export type { ExecutionQuery, TaskAggregate } from './runs.ts';
export { reportChartsScript } from './report.ts';
export { ConsoleConfigError, ConsoleError, ConsoleNotBuiltError } from './errors.ts';
