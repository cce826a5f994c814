import { describe, expect, it } from 'vitest';
import { loadPlatform } from '../policies/index.ts';
import type { RequestMsg } from '../protocol/index.ts';
import { admit, admitGang } from './admission.ts';

const { platform } = loadPlatform(['examples']);
const request = (resources: RequestMsg['resources'], gang?: RequestMsg['gang']): RequestMsg => ({
  requestId: 'r-1',
  team: 'research',
  resources,
  override: false,
  ...(gang ? { gang } : {}),
  work: { kind: 'sim', durationMs: 1, outcome: 'succeeded' },
});
const check = (m: RequestMsg) => {
  const r = admit(m, platform);
  return 'code' in r ? r : (admitGang(m, r) ?? r);
};

describe('admitting gang requests', () => {
  it.each([
    [0, 'resources.nodes', 'resources.nodes: must be at least 1'],
    [2.5, 'resources.nodes', 'resources.nodes: must be a whole number of nodes'],
    [300, 'resources.nodes', 'resources.nodes: must be at most 256'],
    [4, 'gang', 'resources.nodes: 4 nodes is a gang'],
  ])('nodes %s is refused naming %s', (nodes, field, message) => {
    expect(check(request({ gpu: 'H100:8', nodes }))).toMatchObject({ code: 'bad-resources', field });
    expect((check(request({ gpu: 'H100:8', nodes })) as { message: string }).message).toContain(message);
  });

  it('checks the rank against the gang size and takes a member whole', () => {
    expect(check(request({ nodes: 2 }, { id: 'g', rank: 2 }))).toMatchObject({ field: 'gang.rank' });
    expect(check(request({}, { id: 'g', rank: 0 }))).toMatchObject({ field: 'resources.nodes' });
    expect(check(request({ gpu: 'H100:8', nodes: 2 }, { id: 'g', rank: 1 }))).toMatchObject({
      nodes: 2,
      gpu: [{ model: 'H100', count: 8 }],
    });
  });
});
