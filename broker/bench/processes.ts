/**
 * The processes of `npm run bench:broker`: started, measured from /proc, stopped; and nats-server's
 * monitoring (`/connz`), for the messages and bytes each connection sent and received.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's CPU times (USER_HZ, 100 on Linux). */
const TICKS = 100;

/** A process's resident and peak memory (MiB) and the CPU seconds it has used, from /proc. */
export function usage(pid: number): { rssMiB: number; peakMiB: number; cpuSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? 0);
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    rssMiB: kib('VmRSS') / 1024,
    peakMiB: kib('VmHWM') / 1024,
    cpuSeconds: (Number(fields[11]) + Number(fields[12])) / TICKS,
  };
}

/** The processes this run started: killed when it exits, however it ends. */
const spawned = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of spawned) if (child.exitCode === null) child.kill('SIGKILL');
});

/** Starts a Node process; `readyLine`: resolves once it prints a line on stdout (else at once). */
export function spawnNode(args: string[], env: NodeJS.ProcessEnv, readyLine: boolean): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, {
    // Logs (stdout) of a process without a ready line go to stderr, with the run's progress.
    stdio: ['ignore', readyLine ? 'pipe' : 2, 'inherit'],
    env,
  });
  spawned.add(child);
  if (!readyLine) return Promise.resolve(child);
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
}

/** Stops a child with SIGTERM and waits for it. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
}

/** Messages and bytes a connection sent and received, as nats-server counts them. */
export interface Traffic {
  msgs: number;
  bytes: number;
}

/** What the connections whose name contains `name` sent and received, summed over the servers' `/connz`. */
export async function trafficOf(monitorPorts: readonly number[], name: string): Promise<Traffic> {
  let msgs = 0;
  let bytes = 0;
  for (const port of monitorPorts) {
    const res = await fetch(`http://127.0.0.1:${port}/connz?limit=1000`);
    const body = (await res.json()) as {
      connections: {
        name?: string;
        in_msgs: number;
        out_msgs: number;
        in_bytes: number;
        out_bytes: number;
      }[];
    };
    for (const c of body.connections)
      if (c.name?.includes(name)) {
        msgs += c.in_msgs + c.out_msgs;
        bytes += c.in_bytes + c.out_bytes;
      }
  }
  return { msgs, bytes };
}
