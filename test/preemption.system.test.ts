/**
 * Priority preemption on a simulated cluster with one 8-cpu node, embedded and over a real nats-server:
 * under a policy that allows it, a priority-100 request stops the priority-0 work filling the node (which
 * is placed again and finishes after); under one that does not, it waits.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { decodeJson, subjects, type TaskStateMsg, type TaskStatesMsg } from '../protocol/index.ts';
import { eventually, startSystem, TestClient, type TestSystem } from './system.ts';

const FULL_NODE = { cpu: 8, memory: '16Gi' };

describe.each(['embedded', 'nats'] as const)('priority preemption (%s)', (mode) => {
  let system: TestSystem | undefined;
  afterEach(async () => {
    await system?.stop();
    system = undefined;
  });

  async function start() {
    system = await startSystem(mode, { platformDir: 'test/fixtures/preempt-platform', speedup: 100 });
    const client = new TestClient(system.transport);
    const messages: TaskStateMsg[] = [];
    system.transport.subscribe(subjects.taskStates('*', '*'), (m) =>
      messages.push(...(decodeJson(m.data) as TaskStatesMsg).states),
    );
    await system.transport.flush();
    // Low-priority work fills the only node: 200 simulated seconds (2 s).
    const low = await client.request('low-1', {
      team: 'batch',
      resources: FULL_NODE,
      work: { kind: 'sim', durationMs: 200_000 },
    });
    expect(low.ok).toBe(true);
    await eventually(() => client.states.get('low-1')?.includes('running') ?? false, 10_000, 'low-1 running');
    return { system: system!, client, messages };
  }

  it('a policy that allows it: the higher-priority request preempts, the victim is placed again', async () => {
    const { system, client, messages } = await start();
    const high = await client.request('high-1', {
      team: 'urgent',
      resources: FULL_NODE,
      work: { kind: 'sim', durationMs: 10_000 },
    });
    expect(high.ok).toBe(true);
    await client.finished(['high-1', 'low-1'], 20_000);
    expect(client.successes('high-1')).toBe(1);
    // The victim was stopped, placed again and finished after the higher-priority work.
    const low = client.states.get('low-1')!;
    expect(low).toContain('preempted');
    expect(low.at(-1)).toBe('succeeded');
    const stopped = messages.find((m) => m.requestId === 'low-1' && m.state === 'preempted')!;
    expect(stopped.preemption?.kind).toBe('priority');
    expect(stopped.preemption?.detail).toContain('preempted by priority-100 work of team urgent (high-1)');
    expect(stopped.preemption?.detail).toContain('policy urgent allows');
    // The request that preempted heard why it waited.
    const holds = messages.filter((m) => m.requestId === 'high-1' && m.hold).map((m) => m.hold!);
    expect(holds.at(-1)).toMatchObject({ kind: 'capacity' });
    expect(holds.at(-1)?.detail).toMatch(/^preempting 1 lower-priority task\(s\): preempted by priority-100/);
    const leases = [...system.broker.state.leases.values()].filter((l) => l.requestId === 'low-1');
    expect(leases.map((l) => l.state)).toEqual(['preempted', 'succeeded']);
    const counted = await system.broker.metrics.preemptions.get();
    expect(counted.values.find((v) => v.labels.team === 'batch')?.value).toBe(1);
  }, 30_000);

  it('a policy that does not: the higher-priority request waits for the node', async () => {
    const { system, client, messages } = await start();
    const high = await client.request('high-2', {
      team: 'polite',
      resources: FULL_NODE,
      work: { kind: 'sim', durationMs: 10_000 },
    });
    expect(high.ok).toBe(true);
    await client.finished(['high-2', 'low-1'], 20_000);
    expect(client.states.get('low-1')).toEqual(['running', 'succeeded']);
    expect(client.successes('high-2')).toBe(1);
    expect(messages.find((m) => m.requestId === 'high-2' && m.hold)?.hold?.kind).toBe('capacity');
    const counted = await system.broker.metrics.preemptions.get();
    expect(counted.values.reduce((s, v) => s + v.value, 0)).toBe(0);
  }, 30_000);
});
