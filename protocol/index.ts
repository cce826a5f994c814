/**
 * The protocol front door: the `Transport` and `Store` seams, their in-process and local
 * implementations (embedded mode), the wire messages, and the errors. NATS and JetStream live behind
 * `nats-index.ts`, so that core code never loads nats.js.
 *
 * @example
 * import { createMemoryTransport, openLocalStore, encodeJson, subjects } from '../protocol/index.ts';
 *
 * const transport = createMemoryTransport();
 * const store = await openLocalStore('.gantry/state');
 * transport.subscribe(subjects.request('ml'), (msg) => transport.respond(msg, encodeJson({ ok: true })));
 * await store.append(encodeJson({ type: 'started' }));
 */
export {
  BadKeyError,
  BadSubjectError,
  NoRespondersError,
  ProtocolError,
  ReplyLostError,
  StoreClosedError,
  StoreConflictError,
  StoreCorruptError,
  StoreLockedError,
  TransportClosedError,
  TransportTimeoutError,
} from './errors.ts';
export { keyHasPrefix, validateKey, validatePrefix } from './keys.ts';
export { acquireLock as lockDirectory } from './local-files.ts';
export { openLocalStore } from './local-store.ts';
export { openLogReader } from './local-log-reader.ts';
export type { LogReader } from './local-log-reader.ts';
export { createMemoryTransport } from './memory.ts';
export {
  PROTOCOL,
  TERMINAL,
  agentEvent,
  agentEvents,
  brokerFailureKind,
  cancelMsg,
  errorMsg,
  errorReply,
  heartbeatMsg,
  holdKind,
  leaseEndCause,
  leaseEndKind,
  invokeMsg,
  invokeReply,
  launchMsg,
  MAX_FINISHED_IN_HEARTBEAT,
  leaseMsg,
  lineageRecord,
  parseMessage,
  placementExplanation,
  placementMsg,
  reason,
  reasonKind,
  registerMsg,
  requestMsg,
  requestReply,
  resourcesMsg,
  resultMsg,
  runCancelReply,
  runControlMsg,
  runEvent,
  runRecord,
  RUN_STATUSES,
  runStatus,
  runtimeLogRecord,
  executionStartRecord,
  scaleMsg,
  stopMsg,
  stopReply,
  subjects,
  taskState,
  taskStateMsg,
  taskStatesMsg,
  MAX_TASK_STATES,
  NO_RUN,
  valueMsg,
  workSpec,
} from './messages.ts';
export { expandProgramArg, POD_PROGRAM_DIRS, usesInputValue } from './program.ts';
export type { ProgramDirs } from './program.ts';
export { validateSubject } from './subjects.ts';
export { parseAgentEvents, parseHeartbeat } from './agent-reports.ts';
export {
  leaseStatusAsk,
  leaseStatusReply,
  leaseStatusSubjects,
  MAX_STATUS_REQUESTS,
  requestStatus,
  resultsStream,
} from './lease-status.ts';
export type { LeaseStatusAsk, LeaseStatusReply, RequestStatus } from './lease-status.ts';
export {
  batchAnswer,
  batchSubjects,
  MAX_BATCH_ANSWERS,
  MAX_BATCH_REQUESTS,
  requestBatchMsg,
  requestBatchReply,
} from './request-batch.ts';
export type { BatchAnswer, RequestBatchMsg, RequestBatchReply } from './request-batch.ts';
export { decodeJson, encodeJson } from './transport.ts';

export type { MemoryTransportOptions } from './memory.ts';
export type {
  AgentEvent,
  AgentEvents,
  BrokerFailureKind,
  CancelMsg,
  LeaseEndCause,
  StopMsg,
  StopReply,
  ErrorMsg,
  ErrorReply,
  HeartbeatMsg,
  HoldKind,
  InvokeMsg,
  InvokeReply,
  LaunchMsg,
  LeaseMsg,
  LineageRecord,
  NodeMsg,
  PlacementExplanation,
  PlacementMsg,
  Reason,
  ReasonKind,
  RegisterMsg,
  RequestMsg,
  RequestReply,
  ResourcesMsg,
  ResultMsg,
  RunCancelReply,
  RunControlMsg,
  RunEvent,
  RunRecord,
  RuntimeLogRecord,
  ExecutionStartRecord,
  ScaleMsg,
  TaskState,
  TaskStateMsg,
  TaskStatesMsg,
  ValueMsg,
  WorkSpec,
} from './messages.ts';
export type { KeyStore, KvEntry, LogEvent, Store } from './store.ts';
export type {
  Msg,
  RequestOptions,
  SubscribeOptions,
  Subscription,
  Transport,
  TransportEvent,
} from './transport.ts';
