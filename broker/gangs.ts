/**
 * A gang runs whole or not at all: when one member's lease ends badly (its work failed, its spot node
 * was reclaimed, its node or cluster was lost), every other member still placed or running is stopped
 * the same way. Preempted and lost members are placed again together (the cycle plans a gang only
 * whole); a failed gang fails, and the runtime's retry policy decides whether to run it again.
 */
import { encodeJson, subjects, type TaskState } from '../protocol/index.ts';
import type { BrokerContext } from './context.ts';
import type { Dispatch } from './dispatch.ts';
import type { LeaseRecord } from './records.ts';

const ACTIVE: ReadonlySet<TaskState> = new Set(['placed', 'launching', 'running']);

/**
 * Stops the rest of `lease`'s gang after it ended in `ended`; returns how many members were stopped.
 *
 * @example
 * stopGangPeers(ctx, publishState, lease, 'preempted', 'node h100-3 was reclaimed (spot)');
 */
export function stopGangPeers(
  ctx: Pick<BrokerContext, 'state' | 'transport' | 'log'>,
  publishState: Dispatch['publishState'],
  lease: LeaseRecord,
  ended: TaskState,
  reason: string | undefined,
): number {
  const gang = lease.gang;
  if (!gang || (ended !== 'failed' && ended !== 'preempted' && ended !== 'lost')) return 0;
  const { state, transport, log } = ctx;
  const why =
    `gang ${gang.id}: member ${gang.rank} ${ended}${reason ? ` (${reason})` : ''}; ` +
    (ended === 'failed' ? 'the whole gang is stopped' : 'the whole gang is stopped and placed again');
  let stopped = 0;
  for (const r of state.gangMembers(gang.id)) {
    if (r.requestId === lease.requestId || !r.leaseId) continue;
    const peer = state.leases.get(r.leaseId);
    if (!peer || !ACTIVE.has(peer.state)) continue;
    transport.publish(subjects.cancel(peer.cluster), encodeJson({ leaseId: peer.leaseId, reason: why }));
    const changed = state.transition(peer.leaseId, ended, { reason: why });
    if (changed) publishState(changed.requestId, peer.leaseId, ended, why);
    stopped++;
  }
  if (stopped > 0) log.info({ gang: gang.id, rank: gang.rank, ended, stopped }, 'gang stopped');
  return stopped;
}
