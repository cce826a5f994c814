/**
 * Who may do what on the console: without tokens (loopback) everyone may look and act; with tokens,
 * none reads without one, a view token reads and may not act, an admin token acts. Actions need the
 * console's header (so another site's page cannot post them), and the console refuses to listen
 * beyond loopback without a token. The broker here is a fake that records what it was asked.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Db, migrate, openPglite } from '../history/index.ts';
import { type AskBroker, checkTokens, ConsoleConfigError, consoleApp } from './index.ts';

const VIEW = 'v'.repeat(24);
const ADMIN = 'a'.repeat(24);

const dir = mkdtempSync(join(tmpdir(), 'gantry-console-test-'));
let db: Db;
beforeAll(async () => {
  db = await openPglite(join(dir, 'history'));
  await migrate(db);
});
afterAll(async () => {
  await db.close();
  rmSync(dir, { recursive: true, force: true });
});

async function setup(tokens?: { view?: string; admin?: string }) {
  const asked: [string, unknown][] = [];
  const ask: AskBroker = async (verb, body) => {
    asked.push([verb, body]);
    if (verb === 'cancel-run')
      return { ok: true, run: (body as { run: string }).run, stopped: [], withdrawn: [] };
    if (verb === 'requests') return { ok: true, total: 0, requests: [] };
    return { ok: true, cluster: { name: 'aws', draining: verb === 'drain' } };
  };
  const app = consoleApp({ db, ask, ...(tokens ? { tokens } : {}), distDir: '/nonexistent' });
  return { app, asked, close: async () => {} };
}

const drain = (token?: string, header = true) => ({
  method: 'POST',
  headers: {
    'content-type': 'application/json',
    ...(header ? { 'x-gantry-console': '1' } : {}),
    ...(token ? { authorization: `Bearer ${token}` } : {}),
  },
  body: JSON.stringify({ name: 'aws' }),
});

describe('console rights', () => {
  it('lets anyone look and act on loopback without tokens, and asks the broker', async () => {
    const { app, asked, close } = await setup();
    expect((await (await app.request('/v1/me')).json()) as object).toMatchObject({
      rights: ['view', 'act'],
      broker: true,
      cancel: true,
    });
    const res = await app.request('/v1/actions/drain', drain());
    expect(res.status).toBe(200);
    expect(asked).toContainEqual(['drain', { name: 'aws' }]);
    await close();
  });

  it.each([
    ['no token', undefined, 401, 401],
    ['a wrong token', 'x'.repeat(24), 401, 401],
    ['the view token', VIEW, 200, 403],
    ['the admin token', ADMIN, 200, 200],
  ])('with %s', async (_, token, reads, drains) => {
    const { app, asked, close } = await setup({ view: VIEW, admin: ADMIN });
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    expect((await app.request('/v1/runs', { headers })).status).toBe(reads);
    expect((await app.request('/v1/live/queue', { headers })).status).toBe(reads === 200 ? 200 : 401);
    expect((await app.request('/v1/actions/drain', drain(token))).status).toBe(drains);
    expect(asked.some(([verb]) => verb === 'drain')).toBe(drains === 200);
    await close();
  });

  it("cancels with the broker's cancel-run verb, for the admin token only", async () => {
    const { app, asked, close } = await setup({ view: VIEW, admin: ADMIN });
    const cancel = (token: string, body: unknown = { run: 'run-1' }) =>
      app.request('/v1/actions/cancel', { ...drain(token), body: JSON.stringify(body) });
    expect((await cancel(VIEW)).status).toBe(403);
    expect(asked).toEqual([]);
    const bad = await cancel(ADMIN, {});
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { message: /cancel needs the run/ } });
    const res = await cancel(ADMIN);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, run: 'run-1', stopped: [], withdrawn: [] });
    expect(asked).toEqual([['cancel-run', { run: 'run-1', reason: 'from the console' }]]);
    await close();
  });

  it('refuses an action without the console header, even to the admin token', async () => {
    const { app, asked, close } = await setup({ admin: ADMIN });
    const res = await app.request('/v1/actions/drain', drain(ADMIN, false));
    expect(res.status).toBe(403);
    expect(asked).toEqual([]);
    await close();
  });

  it('sets a cookie from ?token= and reads with it after', async () => {
    const { app, close } = await setup({ view: VIEW });
    const first = await app.request(`/v1/runs?token=${VIEW}`);
    expect(first.status).toBe(303);
    expect(first.headers.get('location')).toBe('/v1/runs');
    const cookie = first.headers.get('set-cookie')!.split(';')[0]!;
    expect(first.headers.get('set-cookie')).toMatch(/HttpOnly/);
    expect((await app.request('/v1/runs', { headers: { cookie } })).status).toBe(200);
    await close();
  });

  it('will not listen beyond loopback without a token, nor with a short one', () => {
    expect(() => checkTokens('0.0.0.0', {})).toThrow(ConsoleConfigError);
    expect(() => checkTokens('0.0.0.0', {})).toThrow(/GANTRY_CONSOLE_TOKEN/);
    expect(() => checkTokens('127.0.0.1', { view: 'short' })).toThrow(/at least 16/);
    expect(checkTokens('0.0.0.0', { admin: ADMIN })).toEqual({ admin: ADMIN });
    expect(checkTokens('127.0.0.1', {})).toEqual({});
  });

  it('says the pages are not built rather than serving nothing', async () => {
    const { app, close } = await setup();
    const res = await app.request('/');
    expect(res.status).toBe(503);
    expect(await res.text()).toMatch(/npm run console:build/);
    await close();
  });
});
