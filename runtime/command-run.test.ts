import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { openLocalArtifacts } from './artifacts.ts';
import { Artifact, executionLog, runCommand } from './command-run.ts';
import { NonRetriableError, OutOfMemoryError } from './errors.ts';
import type { TaskContext } from './task.ts';

async function context(memoryMiB = 0): Promise<TaskContext> {
  return {
    runId: 'run-1',
    execution: 'run-1-0',
    task: 't',
    attempt: 1,
    signal: new AbortController().signal,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    artifacts: await openLocalArtifacts(mkdtempSync(join(tmpdir(), 'gantry-cmd-'))),
    placement: {
      cluster: 'c',
      pool: 'p',
      node: 'n',
      capacityType: 'on-demand',
      pricePerHour: 0,
      cpuMilli: 1000,
      memoryMiB,
      gpuMilli: 0,
      gpuModel: null,
      why: '',
    },
  };
}
const sh = (script: string) => ({ command: 'sh', args: ['-c', script] });

describe('runCommand', () => {
  it('writes inputs as files, expands arguments and reads outputs per field', async () => {
    const ctx = await context();
    const inputs = z.object({ name: z.string(), n: z.int() });
    const outputs = z.object({ greeting: z.string(), twice: z.int(), attempt: z.string() });
    const out = await runCommand(
      {
        command: 'sh',
        args: [
          '-c',
          'printf "hi %s" "$(cat $GANTRY_INPUTS/name)" > {{outputs.greeting}}; echo $(( $(cat $GANTRY_INPUTS/n) * 2 )) > $GANTRY_OUTPUTS/twice; echo $GANTRY_ATTEMPT > $GANTRY_OUTPUTS/attempt; echo "arg {{inputs.name}}"',
        ],
      },
      { name: 'ada', n: 21 },
      inputs,
      outputs,
      ctx,
      ctx.artifacts,
    );
    expect(out).toEqual({ greeting: 'hi ada', twice: 42, attempt: '1' });
    expect(new TextDecoder().decode(await ctx.artifacts.get(executionLog(ctx)!))).toBe('arg ada\n');
  });

  it('passes artifacts by reference both ways, and reads outputs.json', async () => {
    const ctx = await context();
    const data = { artifact: await ctx.artifacts.put(new TextEncoder().encode('a,b\n')), bytes: 4 };
    const out = (await runCommand(
      sh(
        'tr a-z A-Z < $GANTRY_INPUTS/data > $GANTRY_OUTPUTS/upper; echo \'{"rows": 1}\' > $GANTRY_OUTPUTS/outputs.json',
      ),
      { data },
      z.object({ data: Artifact }),
      z.object({ upper: Artifact, rows: z.int() }),
      ctx,
      ctx.artifacts,
    )) as { upper: Artifact; rows: number };
    expect(out.rows).toBe(1);
    expect(new TextDecoder().decode(await ctx.artifacts.get(out.upper.artifact))).toBe('A,B\n');
  });

  it.each([
    ['exit 65', sh('echo bad rows >&2; exit 65'), NonRetriableError, 'sh exited with code 65:\nbad rows'],
    [
      'a missing program',
      { command: 'no-such-program-here' },
      NonRetriableError,
      'could not start no-such-program-here: spawn no-such-program-here ENOENT',
    ],
    ['kill -9', sh('kill -9 $$'), OutOfMemoryError, 'sh ran out of memory (killed, exit 137)'],
  ])('%s is a typed error', async (_name, spec, cls, message) => {
    const ctx = await context();
    const err = await runCommand(spec, {}, z.object({}), z.object({}), ctx, ctx.artifacts).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(cls);
    expect((err as Error).message).toBe(message);
  });

  it('kills a program over its memory', async () => {
    const ctx = await context(64);
    const err = await runCommand(
      { command: 'python3', args: ['-c', 'import time; b = b"x" * (200 * 1024 * 1024); time.sleep(2)'] },
      {},
      z.object({}),
      z.object({}),
      ctx,
      ctx.artifacts,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutOfMemoryError);
    expect((err as OutOfMemoryError).memoryMiB).toBe(64);
  });
});
