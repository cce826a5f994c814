/**
 * Agent credentials made at onboarding: an NATS nkey user per cluster whose permissions allow only that
 * cluster's subjects, and the `authorization` block for nats-server that lists them.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createUser, fromSeed } from '@nats-io/nkeys';
import { leaseStatusSubjects, PROTOCOL, resultsStream } from '../protocol/index.ts';
import { inboxPrefix } from '../protocol/nats-index.ts';

/** What a NATS user may publish and subscribe to, and whether it may answer requests it receives. */
export interface Permissions {
  publish: string[];
  subscribe: string[];
  /**
   * nats-server's `allow_responses`: the user may publish to the reply subject of a request it
   * received (once), so responders need no right to publish on anyone's inbox.
   */
  allowResponses?: boolean;
}

/** A NATS user: its public nkey and what it may publish and subscribe to (its own inboxes included). */
export interface NatsUser extends Permissions {
  name: string;
  nkey: string;
}

/** The artifact store's object store bucket, and the runtime's KV bucket and lineage stream. */
export const ARTIFACT_BUCKET = 'gantry-artifacts';
export const RUNTIME_BUCKET = 'gantry-runtime';
export const LINEAGE_STREAM = 'gantry-lineage';

/**
 * JetStream API subjects to use one stream (open it, creating it when missing; write; read through
 * direct gets and ephemeral consumers), not to administer others.
 */
function streamUse(stream: string): string[] {
  return [
    '$JS.API.INFO',
    `$JS.API.STREAM.INFO.${stream}`,
    `$JS.API.STREAM.CREATE.${stream}`,
    `$JS.API.STREAM.MSG.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}.>`,
    `$JS.API.CONSUMER.CREATE.${stream}`,
    `$JS.API.CONSUMER.CREATE.${stream}.>`,
    `$JS.API.CONSUMER.INFO.${stream}.>`,
    `$JS.API.CONSUMER.DELETE.${stream}.>`,
    `$JS.API.CONSUMER.MSG.NEXT.${stream}.>`,
    `$JS.FC.${stream}.>`,
    `$JS.ACK.${stream}.>`,
  ];
}

/** Reading and writing large task values (the object store bucket; every value is checked by hash). */
const ARTIFACTS = {
  publish: [...streamUse(`OBJ_${ARTIFACT_BUCKET}`), `$O.${ARTIFACT_BUCKET}.>`],
  subscribe: [`$O.${ARTIFACT_BUCKET}.>`],
};

const team = (t: string) => `${PROTOCOL}.team.${t}`;

/**
 * What the task hosts of `cluster` need, in the agent's process or in its task pods: nested calls
 * through the cluster's request subject, results signed with the cluster's name, run events, their
 * calls' states and results, serving warm workers, artifacts.
 */
function hostedWork(cluster: string): Permissions {
  return {
    publish: [
      `${PROTOCOL}.agent.${cluster}.request`,
      leaseStatusSubjects.agent(cluster),
      `${team('*')}.exec.*.result.${cluster}`,
      `${team('*')}.run.*.events`,
      `${team('*')}.worker.*.invoke`,
      ...ARTIFACTS.publish,
    ],
    subscribe: [
      `${team('*')}.run.*.states`,
      `${team('*')}.exec.*.result.*`,
      `${team('*')}.worker.>`,
      ...ARTIFACTS.subscribe,
    ],
    allowResponses: true,
  };
}

/**
 * The agent of `cluster`: its own cluster's subjects (register, heartbeat, events, launches, scaling)
 * and what the workflow tasks it hosts need. It cannot speak for another cluster, sign a result as
 * one, ask for `process` work, or read anyone's replies.
 */
export function agentPermissions(cluster: string): Permissions {
  const own = `${PROTOCOL}.agent.${cluster}.>`;
  const hosted = hostedWork(cluster);
  return {
    publish: [own, ...hosted.publish.filter((s) => !s.startsWith(`${PROTOCOL}.agent.`))],
    subscribe: [own, ...hosted.subscribe],
    allowResponses: true,
  };
}

/** Task pods of `cluster` (`gantry worker` on Kubernetes): what hosted workflow code needs, no more. */
export function taskPermissions(cluster: string): Permissions {
  return hostedWork(cluster);
}

/**
 * A workflow runtime of `team` (`gantry run --nats`): the team's subjects only (requests and batches, task
 * states, results, warm workers, run events, run heartbeats and cancels), the artifact store, and its lineage and run records
 * (KV bucket `gantry-runtime`, stream `gantry-lineage`).
 */
export function runtimePermissions(t: string): Permissions {
  return {
    publish: [
      `${team(t)}.request`,
      // Many requests in one message; their answers come on `…batch.<id>.leases`, which only the broker
      // may publish (protocol/request-batch.ts).
      `${team(t)}.requests`,
      `${team(t)}.worker.*.invoke`,
      `${team(t)}.worker.*.stop`,
      `${team(t)}.run.*.events`,
      // Its runs' liveness heartbeats and cancels (hosted tasks cannot cancel runs).
      `${team(t)}.run.*.control`,
      // Where its calls stand after a fault, and its results kept meanwhile (protocol/lease-status.ts).
      leaseStatusSubjects.team(t),
      ...streamUse(resultsStream.name(t)),
      ...ARTIFACTS.publish,
      ...streamUse(`KV_${RUNTIME_BUCKET}`),
      `$KV.${RUNTIME_BUCKET}.>`,
      ...streamUse(LINEAGE_STREAM),
      `${LINEAGE_STREAM}.events`,
    ],
    subscribe: [`${team(t)}.>`, ...ARTIFACTS.subscribe],
  };
}

/** Credential file names: `<name>.nk` in the credentials directory. */
export const credentialName = {
  broker: 'gantry-broker',
  history: 'gantry-history',
  runtime: (t: string) => `runtime-${t}`,
  agent: (cluster: string) => `agent-${cluster}`,
  tasks: (cluster: string) => `tasks-${cluster}`,
} as const;

/**
 * Makes (or reuses) the nkey seed of a user in `dir` (`<name>.nk`, mode 600) and returns the user,
 * with the right to read its own reply inboxes (`_INBOX_<public key>.>`) added.
 *
 * @example
 * const user = ensureUser('.gantry/creds', 'agent-aws-use1', agentPermissions('aws-use1'));
 */
export function ensureUser(dir: string, name: string, perms: Permissions): NatsUser & { seedFile: string } {
  mkdirSync(dir, { recursive: true });
  const seedFile = join(dir, `${name}.nk`);
  let seed: Uint8Array;
  if (existsSync(seedFile)) seed = new TextEncoder().encode(readFileSync(seedFile, 'utf8').trim());
  else {
    seed = createUser().getSeed();
    writeFileSync(seedFile, `${new TextDecoder().decode(seed)}\n`, { mode: 0o600 });
    chmodSync(seedFile, 0o600);
  }
  const nkey = fromSeed(seed).getPublicKey();
  return {
    name,
    nkey,
    seedFile,
    ...perms,
    publish: [...new Set(perms.publish)],
    subscribe: [...new Set(perms.subscribe), `${inboxPrefix(nkey)}.>`],
  };
}

/** The nats-server `authorization` block for these users (include it in the server's config). */
export function authorizationBlock(users: readonly NatsUser[]): string {
  const list = (xs: string[]) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  const lines = users.map(
    (u) =>
      `    # ${u.name}\n    { nkey: ${u.nkey}, permissions: { publish: ${list(u.publish)}, subscribe: ${list(u.subscribe)}${u.allowResponses ? ', allow_responses: true' : ''} } }`,
  );
  return `authorization {\n  users: [\n${lines.join(',\n')}\n  ]\n}\n`;
}

/** The broker's state: KV bucket and event stream (`gantry broker --nats`). */
export const BROKER_BUCKET = 'gantry-state';
export const BROKER_STREAM = 'gantry-events';
/** The brokers' leadership key, in a bucket of its own so renewals never wait behind state writes. */
export const LEADER_BUCKET = 'gantry-leader';

/**
 * The broker and operators (`gantry get`, `gantry apply`) may use every Gantry subject, JetStream's
 * API and their state stream; they read only their own inboxes.
 */
export const BROKER_PERMISSIONS: Permissions = {
  publish: ['gantry.>', '$JS.>', '$KV.>', `${BROKER_STREAM}.>`],
  subscribe: ['gantry.>', '$JS.>', '$KV.>'],
  allowResponses: true,
};

/** The durable consumer `gantry history` reads each stream by. */
export const HISTORY_CONSUMER = 'gantry-history';

/**
 * `gantry history --nats`: read the broker's and the runtime's streams through its own durable consumer
 * (make it, read it, acknowledge, make it anew), and nothing else: it cannot publish to a Gantry
 * subject, write to a stream, or read another consumer's.
 */
export const HISTORY_PERMISSIONS: Permissions = {
  publish: [
    '$JS.API.INFO',
    ...[BROKER_STREAM, LINEAGE_STREAM].flatMap((s) => [
      `$JS.API.STREAM.INFO.${s}`,
      `$JS.API.CONSUMER.INFO.${s}.${HISTORY_CONSUMER}`,
      `$JS.API.CONSUMER.CREATE.${s}.${HISTORY_CONSUMER}`,
      `$JS.API.CONSUMER.CREATE.${s}.${HISTORY_CONSUMER}.>`,
      `$JS.API.CONSUMER.DURABLE.CREATE.${s}.${HISTORY_CONSUMER}`,
      `$JS.API.CONSUMER.DELETE.${s}.${HISTORY_CONSUMER}`,
      `$JS.API.CONSUMER.MSG.NEXT.${s}.${HISTORY_CONSUMER}`,
      `$JS.ACK.${s}.${HISTORY_CONSUMER}.>`,
    ]),
  ],
  subscribe: [],
};
