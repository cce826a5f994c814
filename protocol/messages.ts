/**
 * Gantry's wire protocol: versioned subjects and one zod schema per message. Every message is JSON; every
 * receiver validates it here and answers a bad one with an error naming the field. See docs/protocol.md.
 * The schemas live by concern under `messages/`; this module names them all (and `index.ts` names what
 * other folders may use).
 */
import type { z } from 'zod';
import type {
  agentEvent,
  agentEvents,
  cancelMsg,
  heartbeatMsg,
  launchMsg,
  leaseEndCause,
  nodeMsg,
  registerMsg,
  scaleMsg,
  stopMsg,
  stopReply,
} from './messages/agents.ts';
import type {
  leaseMsg,
  placementExplanation,
  reason,
  reasonKind,
  requestMsg,
  requestReply,
  resourcesMsg,
  taskState,
  taskStateMsg,
  taskStatesMsg,
  valueMsg,
  workSpec,
} from './messages/requests.ts';
import type {
  errorMsg,
  invokeMsg,
  invokeReply,
  lineageRecord,
  placementMsg,
  resultMsg,
  runEvent,
  runRecord,
  runtimeLogRecord,
  executionStartRecord,
} from './messages/runs.ts';

export * from './messages/agents.ts';
export { errorReply, parseMessage } from './messages/fields.ts';
export type { ErrorReply } from './messages/fields.ts';
export * from './messages/requests.ts';
export * from './messages/runs.ts';
export * from './messages/subjects.ts';

export type ResourcesMsg = z.output<typeof resourcesMsg>;
export type WorkSpec = z.output<typeof workSpec>;
export type RequestMsg = z.output<typeof requestMsg>;
export type LeaseMsg = z.output<typeof leaseMsg>;
export type ReasonKind = z.output<typeof reasonKind>;
export type Reason = z.output<typeof reason>;
export type PlacementExplanation = z.output<typeof placementExplanation>;
export type RequestReply = z.output<typeof requestReply>;
export type TaskState = z.output<typeof taskState>;
export type NodeMsg = z.output<typeof nodeMsg>;
export type RegisterMsg = z.output<typeof registerMsg>;
export type HeartbeatMsg = z.output<typeof heartbeatMsg>;
export type AgentEvent = z.output<typeof agentEvent>;
export type LeaseEndCause = z.output<typeof leaseEndCause>;
export type LaunchMsg = z.output<typeof launchMsg>;
export type AgentEvents = z.output<typeof agentEvents>;
export type ScaleMsg = z.output<typeof scaleMsg>;
export type CancelMsg = z.output<typeof cancelMsg>;
export type StopMsg = z.output<typeof stopMsg>;
export type StopReply = z.output<typeof stopReply>;
export type TaskStateMsg = z.output<typeof taskStateMsg>;
export type TaskStatesMsg = z.output<typeof taskStatesMsg>;
export type ValueMsg = z.output<typeof valueMsg>;
export type ErrorMsg = z.output<typeof errorMsg>;
export type ResultMsg = z.output<typeof resultMsg>;
export type InvokeMsg = z.output<typeof invokeMsg>;
export type InvokeReply = z.output<typeof invokeReply>;
export type LineageRecord = z.output<typeof lineageRecord>;
export type RunRecord = z.output<typeof runRecord>;
export type RuntimeLogRecord = z.output<typeof runtimeLogRecord>;
export type ExecutionStartRecord = z.output<typeof executionStartRecord>;
export type PlacementMsg = z.output<typeof placementMsg>;
export type RunEvent = z.output<typeof runEvent>;
