/**
 * Faults through what users run: nats-server restarted (SIGTERM and SIGKILL, about 2 s down, same
 * store) while `gantry run` maps many short tasks on `gantry broker` and `gantry agent` processes.
 * Every task runs exactly once (counted by the tasks themselves) and the run finishes with the right
 * answer. Recovery times are printed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type FaultStack, startFaultStack, tally, watchStalls } from './fault-stack.ts';
import { startNatsServer, type NatsServer } from './nats/server.ts';
import { sleep } from './nats/wait.ts';
import { eventually } from './system.ts';

const N = 600;
const TASK_MS = 300;

let stack: FaultStack | undefined;
let server: NatsServer | undefined;
afterEach(async () => {
  await stack?.stop();
  await server?.[Symbol.asyncDispose]();
  stack = undefined;
  server = undefined;
});

describe('nats-server restarted in the middle of gantry run', () => {
  it.each([
    ['SIGTERM', (s: NatsServer) => s.stop()],
    ['SIGKILL', (s: NatsServer) => s.kill()],
  ] as const)(
    '%s, 2 s down: no task lost, none run twice, the run finishes',
    async (signal, down) => {
      server = await startNatsServer();
      stack = await startFaultStack(server.url);
      const run = stack.run(N, TASK_MS);
      await eventually(() => stack!.counts().size >= N / 4, 60_000, `${N / 4} tasks started`);
      const stalls = watchStalls(stack);
      const downAt = Date.now();
      await down(server);
      await sleep(2000);
      await server.restart();
      const upAt = Date.now();
      const code = await run.exited;
      const { longestGapMs, firstStartMs } = stalls.stop();
      expect(code, run.output()).toBe(0);
      const { lost, twice } = tally(stack.counts(), N);
      console.log(
        `nats-server ${signal}, down ${upAt - downAt} ms: first task started ${after(firstStartMs, upAt - downAt)} after it was back; ` +
          `longest stall ${longestGapMs} ms; lost ${lost.length}, run twice ${twice.length} of ${N}`,
      );
      expect({ lost, twice }).toEqual({ lost: [], twice: [] });
      const out = JSON.parse(run.output().slice(run.output().indexOf('{'))) as { output?: unknown };
      expect(out.output).toBe(N * (N - 1));
    },
    180_000,
  );
});

/** `ms - downMs` as text: how long after the server was back the first task started. */
function after(ms: number | undefined, downMs: number): string {
  return ms === undefined ? 'never' : `${ms - downMs} ms`;
}
