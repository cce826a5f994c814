/**
 * The programs the integration tests run for real — nats-server, a Chromium for the cost report's page,
 * and promtool for the alert rules — where to find them, and what to do when one is missing: install
 * the Debian package when this process may (root with apt-get), or stop with one line naming what to
 * install. Tests are never skipped for want of a server.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** A program the tests need. */
export interface Requirement {
  /** What the tests call it. */
  name: string;
  /** The Debian package that provides it. */
  debianPackage: string;
  /** Absolute paths tried first, then these names on PATH. */
  paths: readonly string[];
  commands: readonly string[];
  /** An environment variable that names the program's path, tried before anything else. */
  env: string;
}

export const NATS_SERVER: Requirement = {
  name: 'nats-server',
  debianPackage: 'nats-server',
  paths: ['/usr/sbin/nats-server', '/usr/bin/nats-server'],
  commands: ['nats-server'],
  env: 'NATS_SERVER',
};

export const CHROMIUM: Requirement = {
  name: 'Chromium',
  debianPackage: 'chromium',
  paths: ['/usr/bin/chromium'],
  commands: ['chromium', 'chromium-browser', 'google-chrome-stable', 'google-chrome'],
  env: 'CHROMIUM',
};

/** Prometheus's own rule checker and unit tester, from Debian's `prometheus` package. */
export const PROMTOOL: Requirement = {
  name: 'promtool',
  debianPackage: 'prometheus',
  paths: ['/usr/bin/promtool'],
  commands: ['promtool'],
  env: 'PROMTOOL',
};

export const REQUIREMENTS: readonly Requirement[] = [NATS_SERVER, CHROMIUM, PROMTOOL];

/** Where the program is, or undefined. */
export function locate(
  req: Requirement,
  env: NodeJS.ProcessEnv = process.env,
  exists: (path: string) => boolean = existsSync,
): string | undefined {
  const named = env[req.env];
  if (named) return exists(named) ? named : undefined;
  return which(req.paths, req.commands, env, exists);
}

function which(
  paths: readonly string[],
  commands: readonly string[],
  env: NodeJS.ProcessEnv,
  exists: (path: string) => boolean,
): string | undefined {
  const onPath = (env.PATH ?? '')
    .split(delimiter)
    .filter(Boolean)
    .flatMap((dir) => commands.map((c) => join(dir, c)));
  return [...paths, ...onPath].find((p) => exists(p));
}

/** What to do about the missing programs. */
export type Remedy =
  { kind: 'none' } | { kind: 'install'; packages: string[]; line: string } | { kind: 'stop'; line: string };

/**
 * Installs when it may (`canInstall`: root with apt-get, and `GANTRY_TEST_INSTALL` not `no`), else one
 * line that names what to install.
 */
export function remedy(missing: readonly Requirement[], canInstall: boolean): Remedy {
  if (missing.length === 0) return { kind: 'none' };
  const packages = missing.map((r) => r.debianPackage);
  const names = missing.map((r) => r.name).join(' and ');
  if (canInstall)
    return {
      kind: 'install',
      packages,
      line: `the tests need ${names}: installing the Debian package${packages.length > 1 ? 's' : ''} ${packages.join(' ')}`,
    };
  return { kind: 'stop', line: notFound(missing) };
}

/** The line that stops the tests: what is missing and how to install it. */
export function notFound(missing: readonly Requirement[]): string {
  const packages = missing.map((r) => r.debianPackage);
  const names = missing.map((r) => r.name).join(' and ');
  const it = missing.length > 1 ? 'them' : 'it';
  return (
    `the tests need ${names}, not found: install ${it} (sudo apt-get install ${packages.join(' ')}) ` +
    `or point ${missing.map((r) => r.env).join(' / ')} at ${it}, then run npm test again`
  );
}

/** Root, with apt-get, and not told otherwise. */
export function mayInstall(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.GANTRY_TEST_INSTALL === 'no') return false;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return false;
  return which(['/usr/bin/apt-get'], ['apt-get'], env, existsSync) !== undefined;
}

/** Runs apt-get for the packages; returns its failure, if any, as a line. */
export function aptInstall(packages: readonly string[]): string | undefined {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', ...packages],
  ]) {
    const r = spawnSync('apt-get', args, { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    if (r.status !== 0) {
      const why = (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').pop();
      return `apt-get ${args[0]} failed (${why}): install ${packages.join(' ')} by hand, then run npm test again`;
    }
  }
  return undefined;
}
