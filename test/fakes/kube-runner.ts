/**
 * The Kubernetes test server's container runtime: each container runs as a local process. The Gantry
 * image's commands run as `node bin/gantry.js …` with the memory limit as the V8 heap limit; any other
 * image runs its command directly (an image can map command names to local executables, so
 * `python:3.12`'s `python` can be Debian's `/usr/bin/python3`), killed as `OOMKilled` when its resident
 * memory passes the limit, as a cgroup would. `emptyDir` volumes are host directories: paths under a
 * container's mount paths in its command, arguments and environment are rewritten to them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { V1Container, V1Pod } from '@kubernetes/client-node';

/** How a container ended. */
export interface RunOutcome {
  exitCode: number;
  reason?: string;
  message?: string;
}

/** One container of a pod to run. */
export interface ContainerRun {
  pod: V1Pod;
  container: V1Container;
  /** Host directories of the pod's `emptyDir` volumes, by this container's mount paths. */
  mounts: Record<string, string>;
  /** Aborts when the pod or its node goes away. */
  signal: AbortSignal;
  /** Appends to the container's log (what `GET …/pods/<name>/log` returns). */
  log(text: string): void;
}

/** Runs a container; resolves when it ends. */
export type PodRunner = (run: ContainerRun) => Promise<RunOutcome>;

/** Options of {@link localRunner}. */
export interface LocalRunnerOptions {
  /** Repository root, to run `node bin/gantry.js` for the Gantry image. Default: the working directory. */
  root?: string;
  /** The image whose commands run as `node bin/gantry.js`. Default `gantry:test`. */
  gantryImage?: string;
  /** Per image, the local executable for a command name (`{ 'python:3.12': { python: '/usr/bin/python3' } }`). */
  images?: Record<string, Record<string, string>>;
  /** Extra environment for containers run locally. */
  env?: Record<string, string>;
  /** A kubeconfig for the test server, given to the Gantry image's processes as `KUBECONFIG`. */
  kubeconfig?: string;
}

const UNITS: Record<string, number> = {
  '': 1,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
};

/** A Kubernetes quantity (`500m`, `2Gi`) as a number. */
export function qty(q: string | undefined): number {
  if (!q) return 0;
  const m = /^([0-9.]+)([A-Za-z]*)$/.exec(q);
  if (!m) return 0;
  return Number(m[1]) * (UNITS[m[2]!] ?? 1);
}

/** `value` with every path under a mount path moved to its host directory. */
function rebase(value: string, mounts: Record<string, string>): string {
  let out = value;
  for (const [mountPath, host] of Object.entries(mounts)) {
    const escaped = mountPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    out = out.replace(new RegExp(`(^|[\\s=:'"])${escaped}(?=/|$|[\\s'"])`, 'g'), `$1${host}`);
  }
  return out;
}

/** Runs containers as local processes (see the module's comment). */
export function localRunner(opts: LocalRunnerOptions = {}): PodRunner {
  const root = opts.root ?? process.cwd();
  const gantryImage = opts.gantryImage ?? 'gantry:test';
  return ({ container: c, mounts, signal, log }) =>
    new Promise((resolve) => {
      const env: Record<string, string> = { ...process.env, ...opts.env } as Record<string, string>;
      for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = rebase(e.value, mounts);
      const memBytes = qty(c.resources?.limits?.memory);
      const argv = [...(c.command ?? []), ...(c.args ?? [])].map((a) => rebase(a, mounts));
      let child: ChildProcess;
      const gantry = c.image === gantryImage;
      if (gantry) {
        if (opts.kubeconfig) env.KUBECONFIG = opts.kubeconfig;
        const heap =
          memBytes > 0 ? [`--max-old-space-size=${Math.max(64, Math.floor(memBytes / 2 ** 20))}`] : [];
        child = spawn(process.execPath, [...heap, 'bin/gantry.js', ...argv], {
          cwd: root,
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
      } else {
        const [cmd, ...args] = argv;
        const local = opts.images?.[c.image ?? '']?.[cmd!] ?? cmd!;
        child = spawn(local, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      }
      let tail = '';
      child.stdout!.on('data', (d: Buffer) => log(d.toString()));
      child.stderr!.on('data', (d: Buffer) => {
        log(d.toString());
        tail = (tail + d.toString()).slice(-4000);
      });
      // The cgroup's memory limit, for images that are not Node: the resident set, sampled.
      let overMemory = false;
      const sample =
        !gantry && memBytes > 0
          ? setInterval(() => {
              if (child.pid !== undefined && resident(child.pid) > memBytes) {
                overMemory = true;
                child.kill('SIGKILL');
              }
            }, 20)
          : undefined;
      const kill = () => child.kill('SIGKILL');
      signal.addEventListener('abort', kill);
      child.once('error', (err) => {
        clearInterval(sample);
        resolve({ exitCode: 128, reason: 'StartError', message: err.message });
      });
      child.once('close', (code, sig) => {
        clearInterval(sample);
        signal.removeEventListener('abort', kill);
        if (overMemory || /heap out of memory/i.test(tail)) resolve({ exitCode: 137, reason: 'OOMKilled' });
        else
          resolve({
            exitCode: code ?? (sig ? 137 : 1),
            ...(code ? { message: tail.trim().split('\n').pop() ?? '' } : {}),
          });
      });
    });
}

/** Resident set of a process in bytes, from /proc (0 when it is gone). */
function resident(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096;
  } catch {
    return 0;
  }
}
