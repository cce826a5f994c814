import { describe, expect, it } from 'vitest';
import { createMemoryTransport, encodeJson, subjects, type TaskStateMsg } from '../protocol/index.ts';
import { TaskStates } from './task-states.ts';

const state = (requestId: string, s: string, at = 1): Record<string, unknown> => ({
  requestId,
  state: s,
  at,
});

async function setup() {
  const transport = createMemoryTransport();
  const states = new TaskStates(transport);
  const heard = new Map<string, string[]>();
  const follow = (runId: string | undefined, requestId: string) =>
    states.follow('ml', runId, requestId, (s: TaskStateMsg) =>
      heard.set(requestId, [...(heard.get(requestId) ?? []), s.state]),
    );
  const publish = async (runId: string | undefined, items: unknown[]) => {
    transport.publish(subjects.taskStates('ml', runId), encodeJson({ states: items }));
    await transport.flush();
  };
  return { transport, heard, follow, publish };
}

describe('TaskStates', () => {
  it('hands each followed request its own states, in order, and skips the rest', async () => {
    const { heard, follow, publish } = await setup();
    follow('run-1', 'a');
    follow('run-1', 'b');
    await publish('run-1', [state('a', 'placed'), state('c', 'running'), state('b', 'running')]);
    await publish('run-1', [state('a', 'running'), state('a', 'succeeded')]);
    expect(Object.fromEntries(heard)).toEqual({ a: ['placed', 'running', 'succeeded'], b: ['running'] });
  });

  it("follows requests of no run on run '-', apart from a run's", async () => {
    const { heard, follow, publish } = await setup();
    follow(undefined, 'a');
    follow('run-1', 'b');
    await publish(undefined, [state('a', 'running'), state('b', 'running')]);
    expect(Object.fromEntries(heard)).toEqual({ a: ['running'] });
  });

  it('drops a malformed state of a followed request and takes the good ones beside it', async () => {
    const { heard, follow, publish, transport } = await setup();
    follow('run-1', 'a');
    await publish('run-1', [{ requestId: 'a', state: 'exploded', at: 1 }, state('a', 'running')]);
    transport.publish(subjects.taskStates('ml', 'run-1'), new TextEncoder().encode('{not json'));
    await transport.flush();
    expect(heard.get('a')).toEqual(['running']);
  });

  it('stops hearing a request once it unfollows, and keeps the others of the run', async () => {
    const { heard, follow, publish } = await setup();
    const stopA = follow('run-1', 'a');
    const stopB = follow('run-1', 'b');
    stopA();
    await publish('run-1', [state('a', 'running'), state('b', 'running')]);
    stopB();
    await publish('run-1', [state('b', 'succeeded')]);
    expect(Object.fromEntries(heard)).toEqual({ b: ['running'] });
  });
});
