import { describe, expect, it } from 'vitest';
import { parseAgentEvents, parseHeartbeat } from './agent-reports.ts';
import { encodeJson } from './transport.ts';

const lease = (extra: Record<string, unknown> = {}) => ({
  type: 'lease',
  cluster: 'aws',
  leaseId: 'l-1',
  state: 'running',
  at: 5,
  node: 'n1',
  ...extra,
});
const node = { name: 'n1', pool: 'cpu', cpuMilli: 4000, memoryMiB: 8192, gpuCount: 0, ready: true };
const beat = (extra: Record<string, unknown> = {}) => ({
  cluster: 'aws',
  agentId: 'a1',
  seq: 1,
  nodes: [{ ...node, capacityType: 'on-demand' }],
  activeCount: 1,
  finished: [{ leaseId: 'l-0', state: 'succeeded', startedAt: 1, ranMs: 3 }],
  ...extra,
});

describe('parseAgentEvents', () => {
  it('takes lease events as sent and node and pool events through the schema (its defaults filled in)', () => {
    const pool = {
      type: 'pool',
      cluster: 'aws',
      pool: 'cpu',
      state: 'exhausted',
      reason: 'quota',
      retryAfterMs: 1000,
      at: 5,
    };
    const parsed = parseAgentEvents(encodeJson({ events: [lease(), pool] }));
    expect(parsed).toEqual({ ok: true, value: { events: [lease(), { ...pool, plannedIds: [] }] } });
  });

  it.each([
    ['an unknown state', lease({ state: 'exploded' }), 'events.1.state'],
    ['a time that is not a number', lease({ at: '5' }), 'events.1.at'],
    ['a negative run time', lease({ ranMs: -1 }), 'events.1.ranMs'],
    ['a field no event has', lease({ extra: 1 }), 'events.1'],
    ['a cause of no known kind', lease({ cause: { kind: 'gremlins', detail: 'x' } }), 'events.1.cause.kind'],
    [
      'a cluster that is not a name',
      lease({ cluster: 'A B', cause: undefined, node: 1 }),
      'events.1.cluster',
    ],
  ])('refuses a lease event with %s, naming the field', (_, event, field) => {
    const parsed = parseAgentEvents(encodeJson({ events: [lease(), event] }));
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toMatchObject({ code: 'bad-message', field });
  });

  it.each([
    ['no events', { events: [] }, 'events'],
    ['a field beside the events', { events: [lease()], more: 1 }, ''],
  ])('refuses a message with %s', (_, body, field) => {
    const parsed = parseAgentEvents(encodeJson(body));
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error.field).toBe(field);
  });

  it('refuses a body that is not JSON', () => {
    const parsed = parseAgentEvents(new TextEncoder().encode('{"events":'));
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error.code).toBe('bad-json');
  });
});

describe('parseHeartbeat', () => {
  it('takes a well-formed heartbeat whole', () => {
    expect(parseHeartbeat(encodeJson(beat()))).toEqual({ ok: true, value: beat() });
  });

  it('fills in the finished entries it may leave out', () => {
    const { finished: _, ...without } = beat();
    expect(parseHeartbeat(encodeJson(without))).toEqual({ ok: true, value: { ...without, finished: [] } });
  });

  it.each([
    [
      'a finished entry of an unknown state',
      beat({ finished: [{ leaseId: 'l-0', state: 'x' }] }),
      'finished.0.state',
    ],
    ['a node without its capacity type', beat({ nodes: [node] }), 'nodes.0.capacityType'],
    ['a sequence number that is negative', beat({ seq: -1 }), 'seq'],
    [
      'a node with negative memory',
      beat({ nodes: [{ ...node, capacityType: 'spot', memoryMiB: -1 }] }),
      'nodes.0.memoryMiB',
    ],
  ])('refuses %s, naming the field', (_, body, field) => {
    const parsed = parseHeartbeat(encodeJson(body));
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toMatchObject({ code: 'bad-message', field });
  });
});
