/**
 * The one contract every LP backend must meet: the hand-computed cases of `lp.cases.ts`, then random
 * feasible bounded models on which the backends must agree with each other.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createJsLpBackend, loadHighsBackend } from './index.ts';
import type { LpBackend, LpModel, LpSolution } from './index.ts';
import { CASES } from './lp.cases.ts';
import { checkSolution, objectiveOf } from './verify.ts';
import { mulberry32 } from '../../test/random.ts';

const BACKENDS: Array<[string, () => Promise<LpBackend>]> = [
  ['javascript-lp-solver', async () => createJsLpBackend()],
  ['highs', () => loadHighsBackend()],
];

/** |a − b| within 1e-6 relative (absolute below 1). */
function near(a: number, b: number, tol = 1e-6): boolean {
  return Math.abs(a - b) <= tol * Math.max(1, Math.abs(a), Math.abs(b));
}

/**
 * A random LP built around a known point, so it is feasible; bounded because every variable with a
 * cost has the bound that cost pushes against (free variables cost nothing). Mixes ≤, ≥, ranged and
 * equality rows, negative and fixed bounds, and duplicate terms.
 */
function randomModel(seed: number): { model: LpModel; point: number[] } {
  const rand = mulberry32(seed);
  const round = (x: number) => Math.round(x * 100) / 100;
  const n = 3 + Math.floor(rand() * 13);
  const m = 2 + Math.floor(rand() * 10);
  const point = Array.from({ length: n }, () => round(rand() * 5));
  const model: LpModel = { variables: [], constraints: [] };
  point.forEach((x, j) => {
    const kind = rand();
    if (kind < 0.5) model.variables.push({ name: `v${j}`, cost: round(rand() * 5) });
    else if (kind < 0.85) {
      const lower = round(x - rand() * 3);
      model.variables.push({
        name: `v${j}`,
        cost: round(rand() * 10 - 5),
        lower,
        upper: round(x + rand() * 3),
      });
    } else if (kind < 0.92)
      model.variables.push({ name: `v${j}`, cost: round(rand() * 4 - 2), lower: x, upper: x });
    else model.variables.push({ name: `v${j}`, cost: 0, lower: -Infinity });
  });
  for (let i = 0; i < m; i++) {
    const terms: Array<[number, number]> = [];
    const k = 1 + Math.floor(rand() * Math.min(n, 5));
    for (let t = 0; t < k; t++) terms.push([Math.floor(rand() * n), round(rand() * 10 - 5) || 1]);
    const activity = terms.reduce((s, [j, c]) => s + c * (point[j] ?? 0), 0);
    const kind = rand();
    const row = { name: `r${i}`, terms };
    if (kind < 0.3) model.constraints.push({ ...row, upper: activity + round(rand() * 2) });
    else if (kind < 0.6) model.constraints.push({ ...row, lower: activity - round(rand() * 2) });
    else if (kind < 0.9)
      model.constraints.push({ ...row, lower: activity - rand(), upper: activity + rand() });
    else model.constraints.push({ ...row, lower: activity, upper: activity });
  }
  return { model, point };
}

const SEEDS = Array.from({ length: 30 }, (_, i) => 1_000 + i);

describe.each(BACKENDS)('LP backend contract: %s', (name, load) => {
  let backend: LpBackend;
  beforeAll(async () => {
    backend = await load();
  });

  it('reports its name', () => {
    expect(backend.name).toBe(name);
  });

  it.each(CASES)('$name', ({ model, status, objective, values }) => {
    const s = backend.solve(model);
    expect({ status: s.status, message: s.message }).toMatchObject({ status });
    expect(s.backend).toBe(name);
    expect(s.values).toHaveLength(model.variables.length);
    expect(s.ms).toBeGreaterThanOrEqual(0);
    if (status === 'infeasible') expect(s.objective).toBe(Infinity);
    if (status === 'unbounded') expect(s.objective).toBe(-Infinity);
    if (objective !== undefined) expect(near(s.objective, objective), `objective ${s.objective}`).toBe(true);
    if (values !== undefined) {
      expect(
        Array.from(s.values).map((x, j) => near(x, values[j] ?? NaN)),
        `values ${s.values}`,
      ).not.toContain(false);
    }
    if (status === 'optimal') expect(s.violations).toBeUndefined();
  });

  it.each(SEEDS)('random feasible model %i: verified optimum no worse than the known point', (seed) => {
    const { model, point } = randomModel(seed);
    const s = backend.solve(model);
    expect(s.status, s.message).toBe('optimal');
    expect(checkSolution(model, s.values)).toEqual([]);
    expect(s.objective).toBeLessThanOrEqual(
      objectiveOf(model, point) + 1e-6 * Math.max(1, Math.abs(s.objective)),
    );
    expect(near(s.objective, objectiveOf(model, s.values), 1e-12)).toBe(true);
  });

  it('throws LpModelError for a term naming a missing variable', () => {
    const model: LpModel = {
      variables: [{ name: 'x', cost: 1 }],
      constraints: [{ name: 'r', terms: [[3, 1]], lower: 1 }],
    };
    expect(() => backend.solve(model)).toThrow(/constraint 0 'r' term 0: names variable 3/);
  });
});

describe('backends agree on random feasible models', () => {
  const solved: Array<[LpBackend, LpSolution[]]> = [];
  beforeAll(async () => {
    for (const [, load] of BACKENDS) {
      const backend = await load();
      solved.push([backend, SEEDS.map((seed) => backend.solve(randomModel(seed).model))]);
    }
  });

  it.each(SEEDS.map((seed, i) => [seed, i]))('model %i: objectives within 1e-6 relative', (_seed, i) => {
    const objectives = solved.map(([, s]) => s[i]!.objective);
    expect(objectives.every(Number.isFinite)).toBe(true);
    expect(near(objectives[0]!, objectives[1]!), `objectives ${objectives}`).toBe(true);
  });
});
