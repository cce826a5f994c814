/**
 * Agent credentials made at onboarding: an NATS nkey user per cluster whose permissions allow only that
 * cluster's subjects, and the `authorization` block for nats-server that lists them.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createUser, fromSeed } from '@nats-io/nkeys';
import { PROTOCOL } from '../protocol/index.ts';

/** A NATS user: its public nkey and what it may publish and subscribe to. */
export interface NatsUser {
  name: string;
  nkey: string;
  publish: string[];
  subscribe: string[];
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

/** Reading and writing large task values (the object store bucket). */
const ARTIFACTS = {
  publish: [...streamUse(`OBJ_${ARTIFACT_BUCKET}`), `$O.${ARTIFACT_BUCKET}.>`],
  subscribe: [`$O.${ARTIFACT_BUCKET}.>`],
};

/**
 * What workflow code may do wherever it runs: ask for resources, follow its tasks, call warm workers,
 * publish run events and results, and use the artifact store.
 */
const WORKLOAD = {
  publish: [
    `${PROTOCOL}.broker.request`,
    `${PROTOCOL}.worker.*.invoke`,
    `${PROTOCOL}.worker.*.stop`,
    `${PROTOCOL}.run.*.events`,
    `${PROTOCOL}.exec.*.result`,
    ...ARTIFACTS.publish,
  ],
  subscribe: [`${PROTOCOL}.task.>`, `${PROTOCOL}.exec.>`, `${PROTOCOL}.run.>`, ...ARTIFACTS.subscribe],
};

/**
 * The subjects an agent of `cluster` may use: its own cluster's, reply inboxes, and what the workflow
 * tasks it hosts need (serving warm workers, results, nested calls, artifacts). It cannot speak for
 * another cluster.
 */
export function agentPermissions(cluster: string): { publish: string[]; subscribe: string[] } {
  const own = `${PROTOCOL}.agent.${cluster}.>`;
  return {
    publish: [own, '_INBOX.>', ...WORKLOAD.publish],
    subscribe: [own, '_INBOX.>', `${PROTOCOL}.worker.>`, ...WORKLOAD.subscribe],
  };
}

/**
 * Makes (or reuses) the nkey seed of a user in `dir` (`<name>.nk`, mode 600) and returns the user.
 *
 * @example
 * const user = ensureUser('.gantry/creds', 'agent-aws-use1', agentPermissions('aws-use1'));
 */
export function ensureUser(
  dir: string,
  name: string,
  perms: { publish: string[]; subscribe: string[] },
): NatsUser & { seedFile: string } {
  mkdirSync(dir, { recursive: true });
  const seedFile = join(dir, `${name}.nk`);
  let seed: Uint8Array;
  if (existsSync(seedFile)) seed = new TextEncoder().encode(readFileSync(seedFile, 'utf8').trim());
  else {
    seed = createUser().getSeed();
    writeFileSync(seedFile, `${new TextDecoder().decode(seed)}\n`, { mode: 0o600 });
    chmodSync(seedFile, 0o600);
  }
  return { name, nkey: fromSeed(seed).getPublicKey(), seedFile, ...perms };
}

/** The nats-server `authorization` block for these users (include it in the server's config). */
export function authorizationBlock(users: readonly NatsUser[]): string {
  const list = (xs: string[]) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  const lines = users.map(
    (u) =>
      `    # ${u.name}\n    { nkey: ${u.nkey}, permissions: { publish: ${list(u.publish)}, subscribe: ${list(u.subscribe)} } }`,
  );
  return `authorization {\n  users: [\n${lines.join(',\n')}\n  ]\n}\n`;
}

/** The broker's state: KV bucket and event stream (`gantry broker --nats`). */
export const BROKER_BUCKET = 'gantry-state';
export const BROKER_STREAM = 'gantry-events';

/**
 * The broker and operators may use every Gantry subject, JetStream's API, their state stream and reply
 * inboxes.
 */
export const BROKER_PERMISSIONS = {
  publish: ['gantry.>', '$JS.>', '$KV.>', `${BROKER_STREAM}.>`, '_INBOX.>'],
  subscribe: ['gantry.>', '$JS.>', '$KV.>', '_INBOX.>'],
};

/** Task pods (`gantry worker` on Kubernetes): what workflow code may do, and serving as warm workers. */
export const TASK_PERMISSIONS = {
  publish: [...WORKLOAD.publish, '_INBOX.>'],
  subscribe: [...WORKLOAD.subscribe, `${PROTOCOL}.worker.>`, '_INBOX.>'],
};

/**
 * A workflow runtime (`gantry run --nats`): what workflow code may do, plus its lineage and run records
 * (KV bucket `gantry-runtime`, stream `gantry-lineage`), and its runs' heartbeats and cancels (tasks
 * cannot cancel runs).
 */
export const RUNTIME_PERMISSIONS = {
  publish: [
    ...WORKLOAD.publish,
    `${PROTOCOL}.run.*.control`,
    ...streamUse(`KV_${RUNTIME_BUCKET}`),
    `$KV.${RUNTIME_BUCKET}.>`,
    ...streamUse(LINEAGE_STREAM),
    `${LINEAGE_STREAM}.events`,
  ],
  subscribe: [...WORKLOAD.subscribe, '_INBOX.>'],
};
