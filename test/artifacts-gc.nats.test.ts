/**
 * Artifact retention: both stores (a local directory, a JetStream object store on a real nats-server)
 * list and delete the same way, and `gantry artifacts gc` deletes exactly the values written and last
 * used before the retention, keeping what a run used recently and what was written recently; a dry run
 * deletes nothing, and a history that knows no executions deletes nothing without --force.
 */
import { mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeJson, openLocalStore } from '../protocol/index.ts';
import { connectNats, type NatsTransport } from '../protocol/nats-index.ts';
import { ArtifactMissingError } from '../runtime/artifacts.ts';
import { type CollectableArtifactStore, openLocalArtifacts } from '../runtime/index.ts';
import { openJetStreamArtifacts } from '../runtime/nats-artifacts.ts';
import { runGantry, spawnGantry } from './cli.ts';
import { lineage } from './history-data.ts';
import { type NatsServer, startNatsServer } from './nats/server.ts';

const DAY = 86_400_000;
const text = (s: string) => new TextEncoder().encode(s);

let server: NatsServer;
let nats: NatsTransport;
beforeAll(async () => {
  server = await startNatsServer();
  nats = await connectNats({ servers: server.url, name: 'test' });
});
afterAll(async () => {
  await nats?.close();
  await server?.stop();
});

describe.each([
  ['local', async () => openLocalArtifacts(mkdtempSync(join(tmpdir(), 'gantry-artifacts-')))],
  [
    'jetstream',
    async () => openJetStreamArtifacts(nats.connection, `gc-${Math.random().toString(36).slice(2)}`),
  ],
] as [string, () => Promise<CollectableArtifactStore>][])('the %s artifact store', (_name, open) => {
  it('lists what it holds with sizes and times, and deletes by ref', async () => {
    const store = await open();
    const before = Date.now() - 1000;
    const a = await store.put(text('a'.repeat(10)));
    const b = await store.put(text('b'.repeat(20)));
    const listed = [];
    for await (const v of store.list()) listed.push(v);
    expect(listed.map((v) => [v.ref, v.bytes]).sort()).toEqual(
      [
        [a, 10],
        [b, 20],
      ].sort(),
    );
    for (const v of listed) expect(v.storedAt).toBeGreaterThan(before);
    await store.delete(a);
    await store.delete(a);
    await expect(store.get(a)).rejects.toBeInstanceOf(ArtifactMissingError);
    expect(new TextDecoder().decode(await store.get(b))).toBe('b'.repeat(20));
    const left = [];
    for await (const v of store.list()) left.push(v.ref);
    expect(left).toEqual([b]);
  });
});

describe('gantry artifacts gc', () => {
  it('deletes what was written and last used before the retention, and nothing on a dry run', async () => {
    const state = mkdtempSync(join(tmpdir(), 'gantry-gc-'));
    try {
      const now = Date.now();
      const store = await openLocalArtifacts(join(state, 'artifacts'));
      const [recent, stale, orphan, young] = await Promise.all(
        ['used yesterday', 'used 50 days ago', 'never used', 'written just now'].map((s) =>
          store.put(text(s)),
        ),
      );
      const pathOf = (ref: string) => join(state, 'artifacts', ref.slice(7, 9), ref.slice(7));
      for (const ref of [recent!, stale!, orphan!])
        utimesSync(pathOf(ref), new Date(now - 60 * DAY), new Date(now - 60 * DAY));
      const runtime = await openLocalStore(join(state, 'runtime'));
      await runtime.append(
        encodeJson([
          // The recent one inside a bigger input ({ data, lr }), the stale one a whole output.
          lineage({
            execution: 'e1',
            input: 'sha256:aa',
            refs: { input: [recent!] },
            startedAt: now - DAY - 5,
            endedAt: now - DAY,
          }),
          lineage({
            execution: 'e2',
            input: 'sha256:bb',
            output: stale!,
            startedAt: now - 50 * DAY - 5,
            endedAt: now - 50 * DAY,
          }),
        ]),
      );
      await runtime.close();

      const gc = ['artifacts', 'gc', '--older-than', '30d', '--state', state];
      const dry = await runGantry(...gc, '--dry-run', '-o', 'json');
      expect(dry.err).toMatch(/^creating the history database in .*\n$/);
      expect(dry.code).toBe(0);
      const decided = (JSON.parse(dry.out) as { items: { ref: string; action: string; why: string }[] })
        .items;
      expect(Object.fromEntries(decided.map((i) => [i.ref, `${i.action} ${i.why}`]))).toEqual({
        [recent!]: 'keep used-recently',
        [stale!]: 'delete unused',
        [orphan!]: 'delete never-referenced',
        [young!]: 'keep written-recently',
      });
      for (const ref of [recent!, stale!, orphan!, young!])
        expect((await store.get(ref)).byteLength).toBeGreaterThan(0);

      const real = await runGantry(...gc);
      expect(real.code).toBe(0);
      expect(real.err).toMatch(
        /^deleted 2 of 4 values \(26 B\) from .*artifacts; kept 2 \(30 B\) written or used in the last 30d$/m,
      );
      // Nothing left to collect: one line saying so, and what is kept, rather than an empty table.
      const nothing = await spawnGantry([...gc, '--dry-run']);
      expect(nothing).toMatchObject({ code: 0, err: '' });
      expect(nothing.out).toBe(
        `nothing would be deleted from ${join(state, 'artifacts')}: kept all 2 values (30 B), written or used in the last 30d\n`,
      );
      await expect(store.get(stale!)).rejects.toBeInstanceOf(ArtifactMissingError);
      await expect(store.get(orphan!)).rejects.toBeInstanceOf(ArtifactMissingError);
      expect(new TextDecoder().decode(await store.get(recent!))).toBe('used yesterday');
      expect(new TextDecoder().decode(await store.get(young!))).toBe('written just now');

      // The history keeps the refs, and when they were collected.
      const again = await runGantry(...gc, '-o', 'json', '--all');
      expect((JSON.parse(again.out) as { items: { ref: string }[] }).items.map((i) => i.ref).sort()).toEqual(
        [recent!, young!].sort(),
      );
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  }, 60_000);

  it('deletes nothing when the history knows no executions, unless --force', async () => {
    const state = mkdtempSync(join(tmpdir(), 'gantry-gc-empty-'));
    try {
      const store = await openLocalArtifacts(join(state, 'artifacts'));
      const ref = await store.put(text('old'));
      const old = new Date(Date.now() - 90 * DAY);
      utimesSync(join(state, 'artifacts', ref.slice(7, 9), ref.slice(7)), old, old);
      const refused = await runGantry('artifacts', 'gc', '--older-than', '30d', '--state', state);
      expect(refused.code).toBe(2);
      expect(refused.err).toMatch(/knows no executions, so every old value looks unused/);
      expect((await store.get(ref)).byteLength).toBe(3);
      const bad = await runGantry('artifacts', 'gc', '--older-than', 'a month', '--state', state);
      expect(bad.err).toBe("gantry: --older-than must be a duration such as 30d, 12h or 2w, not 'a month'\n");
      const forced = await runGantry('artifacts', 'gc', '--older-than', '30d', '--state', state, '--force');
      expect(forced.code).toBe(0);
      await expect(store.get(ref)).rejects.toBeInstanceOf(ArtifactMissingError);
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  }, 60_000);
});
