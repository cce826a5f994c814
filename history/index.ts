/**
 * The history store: runs, executions, lineage, placements and the cost ledger in PostgreSQL (or an
 * embedded PGlite in the state directory), ingested from the broker's and the runtime's logs exactly
 * once, and the queries the CLI and the console ask of it over a small HTTP JSON API.
 *
 * @example
 * import { openHistory, sqlCostReport } from '../history/index.ts';
 * const history = await openHistory({ dir: '.gantry/state/history' });
 * await history.ingester.apply('broker', entries);
 * const report = await sqlCostReport(history.db, { by: ['team'], since, until });
 */
export { openPglite, openPostgres, redact } from './db.ts';
export type { Db, DbLock, Queryable, Row } from './db.ts';
export {
  HistoryError,
  HistoryQueryError,
  HistoryUnavailableError,
  IngestGapError,
  SchemaTooNewError,
} from './errors.ts';
export { MIGRATIONS, migrate, SCHEMA_VERSION } from './migrations.ts';
export type { Migration } from './migrations.ts';
export { Ingester } from './ingest.ts';
export { HOUR, hourPieces } from './ingest-usage.ts';
export type { ApplyOptions, IngestResult, LogEntry } from './ingest.ts';
export { parseEntry, SOURCES } from './records.ts';
export type { Source } from './records.ts';
export { DAY, sqlCostReport } from './cost.ts';
export type { CostQuery, HistoryCostReport } from './cost.ts';
export { MAX_DEPTH, resolveTarget, sqlLineage } from './lineage.ts';
export type { Target } from './lineage.ts';
export { artifactUse, listArtifacts, markCollected } from './artifacts.ts';
export type { ArtifactRow, ArtifactUse } from './artifacts.ts';
export { recordBudgets } from './budgets.ts';
export { describeRun, listRuns } from './runs.ts';
export type { PlacementRow, RunDetail, RunFilter, RunPage } from './runs.ts';
export { openHistory } from './open.ts';
export type { History, HistoryOptions } from './open.ts';
export { historyApi } from './api.ts';
export type { ApiOptions } from './api.ts';
export { httpHistoryClient, localHistoryClient } from './client.ts';
export type { HistoryClient } from './client.ts';
export { BATCH, catchUp, followLog, followSource, serveHistoryApi } from './follow.ts';
export type { FollowEvent, FollowSourceOptions } from './follow.ts';
