/**
 * Who asked: the broker takes a request's team from the subject it arrived on, which NATS permissions
 * tie to a credential (docs/security.md), never from the message. A team's runtime publishes on
 * `gantry.v1.team.<team>.request` (batches on `….requests`); a cluster's agent (the nested calls of the tasks it hosts, and its
 * task pods) on `gantry.v1.agent.<cluster>.request`.
 */
import type { Platform } from '../policies/index.ts';
import { PROTOCOL, type RequestMsg } from '../protocol/index.ts';

/** Where a request came from. */
export type Origin = { kind: 'team'; team: string } | { kind: 'agent'; cluster: string };

/** A request refused for who sent it (`code: 'forbidden'`), with the field at fault. */
export interface Forbidden {
  code: 'forbidden';
  message: string;
  field: string;
}

const TEAM = `${PROTOCOL}.team.`;
const AGENT = `${PROTOCOL}.agent.`;

/**
 * The origin a request subject names, or undefined for any other subject (the in-process transport
 * of embedded mode and tests publish on the same subjects).
 *
 * @example
 * requestOrigin('gantry.v1.team.ml.request'); // { kind: 'team', team: 'ml' }
 */
export function requestOrigin(subject: string): Origin | undefined {
  const tokens = subject.split('.');
  if (tokens.length !== 5) return undefined;
  // A team's batches (`…team.<team>.requests`) are the team's as much as its single requests.
  if (subject.startsWith(TEAM) && (tokens[4] === 'request' || tokens[4] === 'requests'))
    return { kind: 'team', team: tokens[3]! };
  if (tokens[4] !== 'request') return undefined;
  if (subject.startsWith(AGENT)) return { kind: 'agent', cluster: tokens[3]! };
  return undefined;
}

/** What {@link authorizeRequest} needs to know of the broker's state. */
export interface OriginContext {
  platform: Platform;
  /** Whether `team` has a lease running `task` or `worker` work on `cluster` now. */
  teamRunsOn(team: string, cluster: string): boolean;
}

/**
 * Refuses a request its origin may not make: another team's (`team` differs from the subject's),
 * work a team's policy does not list in `workKinds`, an agent's for a team with no workflow work on
 * its cluster, or an agent's `process` or `sim` work. Undefined when allowed.
 */
export function authorizeRequest(
  origin: Origin | undefined,
  m: RequestMsg,
  ctx: OriginContext,
): Forbidden | undefined {
  if (origin === undefined)
    return { code: 'forbidden', message: 'unknown request subject', field: 'subject' };
  const kind = m.work.kind;
  if (origin.kind === 'team') {
    if (m.team !== origin.team)
      return {
        code: 'forbidden',
        message: `a runtime of team '${origin.team}' cannot ask as team '${m.team}'`,
        field: 'team',
      };
    if ((m.work.kind === 'task' || m.work.kind === 'worker') && m.work.team !== origin.team)
      return {
        code: 'forbidden',
        message: `a runtime of team '${origin.team}' cannot run work as team '${m.work.team}'`,
        field: 'work.team',
      };
    const policy = ctx.platform.policyFor(m.team);
    const allowed = policy?.workKinds ?? ['task', 'worker', 'sim'];
    if (policy && !allowed.includes(kind))
      return {
        code: 'forbidden',
        message: `policy ${policy.name} does not let team '${m.team}' run ${kind} work (workKinds: ${allowed.join(', ')})`,
        field: 'work.kind',
      };
    return undefined;
  }
  if (kind !== 'task' && kind !== 'worker')
    return {
      code: 'forbidden',
      message: `cluster ${origin.cluster}'s agent may ask only for task and worker work, not ${kind}`,
      field: 'work.kind',
    };
  if (m.work.team !== m.team)
    return { code: 'forbidden', message: 'work.team differs from team', field: 'work.team' };
  if (!ctx.teamRunsOn(m.team, origin.cluster))
    return {
      code: 'forbidden',
      message: `cluster ${origin.cluster}'s agent cannot ask as team '${m.team}': the team has no workflow work there`,
      field: 'team',
    };
  return undefined;
}
