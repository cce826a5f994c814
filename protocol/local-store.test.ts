/**
 * What only the local store has: crash leftovers in its files, the directory lock, and compaction.
 * (The behaviour it shares with JetStream is in store.contract.test.ts.)
 */
import { spawnSync } from 'node:child_process';
import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreCorruptError, StoreLockedError } from './errors.ts';
import { openLocalStore } from './local-store.ts';
import type { LogEvent, Store } from './store.ts';

const text = (s: string) => new TextEncoder().encode(s);
const str = (d: Uint8Array) => new TextDecoder().decode(d);

async function events(it: AsyncIterable<LogEvent>): Promise<string[]> {
  const out: string[] = [];
  for await (const e of it) out.push(`${e.seq}:${str(e.data)}`);
  return out;
}

describe('local store files', () => {
  let dir: string;
  const open: Store[] = [];
  const openStore = async () => {
    const s = await openLocalStore(dir);
    open.push(s);
    return s;
  };
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gantry-local-'));
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['a line cut short', '{"r":99,"k":"torn","v":"QUJD'],
    ['a complete line of garbage', '{"r":99,"k":"torn","v":\n'],
    ['zeros left by a crash', '\0\0\0\0\0\0'],
  ])('drops a torn last record (%s) on open and truncates it away', async (_name, tail) => {
    let store = await openStore();
    await store.put('kept.a', text('A'));
    await store.appendMany([text('e1'), text('e2')]);
    await store.close();
    const kvSize = (await stat(join(dir, 'kv.log'))).size;
    const logSize = (await stat(join(dir, 'events.log'))).size;
    await appendFile(join(dir, 'kv.log'), tail);
    await appendFile(join(dir, 'events.log'), tail.replace('"r":99,"k"', '"s":3,"d"'));

    store = await openStore();
    expect((await store.list('')).map((e) => [e.key, str(e.value)])).toEqual([['kept.a', 'A']]);
    expect(await events(store.readLog())).toEqual(['1:e1', '2:e2']);
    expect((await stat(join(dir, 'kv.log'))).size).toBe(kvSize);
    expect((await stat(join(dir, 'events.log'))).size).toBe(logSize);
    await store.put('after.crash', text('B'));
    expect(await store.append(text('e3'))).toBe(3);
    await store.close();

    store = await openStore();
    expect((await store.list('')).map((e) => e.key)).toEqual(['after.crash', 'kept.a']);
    expect(await events(store.readLog(2))).toEqual(['2:e2', '3:e3']);
  });

  it('refuses a damaged record that is not the last one', async () => {
    const store = await openStore();
    await store.put('a', text('A'));
    await store.put('b', text('B'));
    await store.close();
    const lines = (await readFile(join(dir, 'kv.log'), 'utf8')).split('\n');
    lines[0] = '{"r":1,"k":"a",';
    await writeFile(join(dir, 'kv.log'), lines.join('\n'));
    const err = await openLocalStore(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreCorruptError);
    expect(err).toMatchObject({ path: join(dir, 'kv.log'), line: 1 });
  });

  it('refuses a second open of a directory in use, and allows it after close', async () => {
    const first = await openLocalStore(dir);
    const err = await openLocalStore(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreLockedError);
    expect(err).toMatchObject({ dir, pid: process.pid });
    expect((err as Error).message).toContain(`process ${process.pid}`);
    await first.put('k', text('v'));
    await first.close();
    const second = await openStore();
    expect(str((await second.get('k'))!.value)).toBe('v');
  });

  it('takes over a lock left by a process that died', async () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.exit(0)']).pid!;
    await writeFile(join(dir, 'LOCK'), `${dead}\n`);
    const store = await openStore();
    await store.put('k', text('v'));
    expect((await readFile(join(dir, 'LOCK'), 'utf8')).trim()).toBe(String(process.pid));
  });

  it('compacts the KV file and keeps values and revisions growing', async () => {
    let store = await openStore();
    await store.put('other', text('o'));
    // 30 flushes of 100 records: past the 1,024-record floor and 4× the live keys several times over.
    for (let i = 0; i < 3000; i += 100) {
      await store.putMany(Array.from({ length: 100 }, (_, j) => ({ key: 'hot', value: text(`v${i + j}`) })));
    }
    const last = (await store.get('hot'))!.revision;
    expect(last).toBe(3001);
    const size = (await stat(join(dir, 'kv.log'))).size;
    // 3,001 records uncompacted would be ~150 KB; compaction keeps the file near its live size.
    expect(size).toBeLessThan(60_000);
    await store.delete('other');
    await store.close();

    store = await openStore();
    expect(await store.list('')).toEqual([{ key: 'hot', value: text('v2999'), revision: last }]);
    expect(await store.put('fresh', text('f'))).toBe(last + 2);
  });

  it('shares fsyncs between concurrent puts without losing any', async () => {
    let store = await openStore();
    const revs = await Promise.all(
      Array.from({ length: 500 }, (_, i) => store.put(`c.k${i}`, text(String(i)))),
    );
    expect(new Set(revs).size).toBe(500);
    await store.close();
    store = await openStore();
    expect((await store.list('c')).length).toBe(500);
  });
});
