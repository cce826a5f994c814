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

/** The subjects an agent of `cluster` may use: its own, and reply inboxes. */
export function agentPermissions(cluster: string): { publish: string[]; subscribe: string[] } {
  const own = `${PROTOCOL}.agent.${cluster}.>`;
  return { publish: [own, '_INBOX.>'], subscribe: [own, '_INBOX.>'] };
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

/** The broker and operators may use every Gantry subject, JetStream's API and reply inboxes. */
export const BROKER_PERMISSIONS = {
  publish: ['gantry.>', '$JS.>', '$KV.>', '_INBOX.>'],
  subscribe: ['gantry.>', '$JS.>', '$KV.>', '_INBOX.>'],
};

/** A workflow runtime may ask for resources and follow its tasks, nothing else. */
export const RUNTIME_PERMISSIONS = {
  publish: ['gantry.v1.broker.request'],
  subscribe: ['gantry.v1.task.>', '_INBOX.>'],
};
