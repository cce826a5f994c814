/**
 * The users `gantry cluster onboard` writes: the broker, one runtime per team, and an agent and its
 * task pods per cluster, each with only its own subjects (docs/security.md). Clusters onboarded
 * earlier keep their credentials, so the authorization block lists every one of them.
 */
import { readdirSync } from 'node:fs';
import {
  agentPermissions,
  BROKER_PERMISSIONS,
  credentialName,
  ensureUser,
  HISTORY_PERMISSIONS,
  type NatsUser,
  runtimePermissions,
  taskPermissions,
} from './credentials.ts';

/**
 * Makes (or reuses) the credentials in `dir` for the broker, every team and every cluster (these and
 * those whose agent credentials are already there), and returns their users.
 *
 * @example
 * writeFileSync('nats-authorization.conf', authorizationBlock(onboardingUsers(dir, ['ml'], [cluster])));
 */
export function onboardingUsers(
  dir: string,
  teams: readonly string[],
  clusters: readonly { name: string }[],
): NatsUser[] {
  const users: NatsUser[] = [
    ensureUser(dir, credentialName.broker, BROKER_PERMISSIONS),
    ensureUser(dir, credentialName.history, HISTORY_PERMISSIONS),
  ];
  const known = new Set(clusters.map((c) => c.name));
  const previous = (prefix: string) => {
    try {
      return readdirSync(dir)
        .filter((f) => f.startsWith(prefix) && f.endsWith('.nk'))
        .map((f) => f.slice(prefix.length, -'.nk'.length));
    } catch {
      return [];
    }
  };
  for (const name of previous(credentialName.agent(''))) known.add(name);
  const allTeams = new Set(teams);
  for (const t of previous(credentialName.runtime(''))) allTeams.add(t);
  for (const t of [...allTeams].sort())
    users.push(ensureUser(dir, credentialName.runtime(t), runtimePermissions(t)));
  for (const c of [...known].sort()) {
    users.push(ensureUser(dir, credentialName.agent(c), agentPermissions(c)));
    users.push(ensureUser(dir, credentialName.tasks(c), taskPermissions(c)));
  }
  return users;
}
