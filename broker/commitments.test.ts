import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Platform } from '../policies/index.ts';
import { openLocalStore, type LeaseMsg } from '../protocol/index.ts';
import { mulberry32 } from '../test/random.ts';
import { Budgets } from './budgets.ts';
import { BrokerState } from './state.ts';
import { requestRecord } from './test-builders.ts';

const TEAMS = ['ml', 'cv', 'nlp'];

function lease(id: string, requestId: string, pricePerHour: number): LeaseMsg {
  return {
    ...{ leaseId: id, requestId, cluster: id.length % 2 ? 'c1' : 'c2', pool: 'p1', node: 'n1' },
    ...{ pricePerHour, cpuMilli: 1000, memoryMiB: 1024, gpuMilli: 0, gpuModel: null },
    ...{ capacityType: 'on-demand', expiresAt: 1e12, attempt: 0, why: 'test' },
    work: { kind: 'sim', durationMs: 1, outcome: 'succeeded' },
  };
}

/** A scan of every active lease, as the budget gate and the overrun check did it before. */
function scanned(state: BrokerState, timeScale: number, now: number): Record<string, number> {
  const budgets = new Budgets({ policies: [], pools: [], clusters: [] } as unknown as Platform, timeScale);
  return Object.fromEntries(budgets.committedByTeam(state.active(), state.requests, now));
}

/** The same teams commit the same dollars, to a hundred-thousandth (sums kept and scanned add in different orders). */
function expectSame(kept: ReadonlyMap<string, number>, scan: Record<string, number>): void {
  const teams = (m: Record<string, number>) =>
    Object.keys(m)
      .filter((t) => Math.abs(m[t]!) > 1e-6)
      .sort();
  const k = Object.fromEntries(kept);
  expect(teams(k)).toEqual(teams(scan));
  for (const t of teams(scan)) expect(k[t]).toBeCloseTo(scan[t]!, 5);
}

describe('commitments of active leases, kept as they start, move and end', () => {
  it.each([1, 60])(
    'equal a scan of every active lease at every step of a random lifecycle (time scale %i)',
    async (timeScale) => {
      const clock = { now: 1_000_000 };
      const store = await openLocalStore(mkdtempSync(join(tmpdir(), 'gantry-commitments-')));
      const state = new BrokerState(store, () => clock.now, timeScale);
      const rand = mulberry32(timeScale);
      let n = 0;
      const live: string[] = [];
      for (let step = 0; step < 600; step++) {
        const roll = rand();
        if (roll < 0.35 || live.length === 0) {
          const id = `r${n++}`;
          const r = requestRecord(id, TEAMS[Math.floor(rand() * 3)]!, 1 + Math.floor(rand() * 120));
          state.addRequest(r);
          state.place(r, lease(`l${id}`, id, Math.round(rand() * 400) / 100));
          live.push(`l${id}`);
        } else {
          const id = live[Math.floor(rand() * live.length)]!;
          const l = state.leases.get(id)!;
          if (roll < 0.55 && l.state !== 'running') {
            state.transition(id, l.state === 'placed' && rand() < 0.5 ? 'launching' : 'running', {
              node: rand() < 0.3 ? 'n2' : undefined,
            });
          } else if (roll < 0.7) {
            state.extendCommitment(l, clock.now + Math.floor(rand() * 60_000));
          } else {
            state.transition(id, rand() < 0.5 ? 'succeeded' : 'lost', { reason: 'x' });
            live.splice(live.indexOf(id), 1);
          }
        }
        // Time moves on by up to a minute: some commitments run out and go on past their end.
        clock.now += Math.floor(rand() * 60_000);
        if (step % 7 === 0)
          expectSame(state.committedByTeam(clock.now), scanned(state, timeScale, clock.now));
        if (step % 11 === 0) {
          // Every active lease whose commitment ends within the lookahead is among those due.
          const t = clock.now + 5000;
          const due = new Set(state.commitmentsEndingBy(t));
          const budgets = new Budgets({ policies: [] } as unknown as Platform, timeScale);
          for (const l of state.active())
            if (budgets.committedUntil(l, state.requests.get(l.requestId)!) <= t)
              expect(due.has(l)).toBe(true);
        }
      }
      expect(n).toBeGreaterThan(150);
      expectSame(state.committedByTeam(clock.now), scanned(state, timeScale, clock.now));
    },
  );

  it('start again from the loaded leases after a load', async () => {
    const clock = { now: 1000 };
    const store = await openLocalStore(mkdtempSync(join(tmpdir(), 'gantry-commitments-')));
    const state = new BrokerState(store, () => clock.now);
    const r = requestRecord('a', 'ml', 3600);
    state.addRequest(r);
    state.place(r, lease('la', 'a', 2));
    // One hour at $2/h.
    expectSame(state.committedByTeam(clock.now), { ml: 2 });
    const placed = state.leases.get('la')!;
    state.load(
      [{ ...r, state: 'running', leaseId: 'la' }],
      [{ ...placed, state: 'running', startedAt: 1000 }],
    );
    // Two hours in: an hour past its commitment, still running.
    clock.now = 1000 + 2 * 3_600_000;
    expectSame(state.committedByTeam(clock.now), { ml: 4 });
    state.transition('la', 'succeeded', {});
    expectSame(state.committedByTeam(clock.now), {});
  });
});
