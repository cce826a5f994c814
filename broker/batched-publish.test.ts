import { describe, expect, it } from 'vitest';
import { createMemoryTransport, decodeJson } from '../protocol/index.ts';
import { BatchedPublish } from './batched-publish.ts';

function setup(max: number) {
  const transport = createMemoryTransport();
  const heard: { subject: string; items: unknown[] }[] = [];
  transport.subscribe('s.>', (m) =>
    heard.push({ subject: m.subject, items: (decodeJson(m.data) as { states: unknown[] }).states }),
  );
  return { heard, batch: new BatchedPublish(transport, 'states', max) };
}

describe('BatchedPublish', () => {
  it('sends what one turn gathered as one message per subject, in order, at most `max` items each', async () => {
    const { heard, batch } = setup(2);
    for (const [subject, n] of [
      ['s.a', 1],
      ['s.b', 2],
      ['s.a', 3],
      ['s.a', 4],
    ] as const)
      batch.add(subject, JSON.stringify({ n }));
    batch.flush();
    await new Promise((r) => setTimeout(r, 0));
    expect(heard).toEqual([
      { subject: 's.a', items: [{ n: 1 }, { n: 3 }] },
      { subject: 's.a', items: [{ n: 4 }] },
      { subject: 's.b', items: [{ n: 2 }] },
    ]);
  });

  it('sends by itself on the next turn of the event loop, once', async () => {
    const { heard, batch } = setup(10);
    batch.add('s.a', '1');
    batch.add('s.a', '2');
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(heard).toEqual([{ subject: 's.a', items: [1, 2] }]);
  });
});
