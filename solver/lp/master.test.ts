import { describe, expect, it } from 'vitest';
import { loadHighsBackend } from './index.ts';

describe('HiGHS master (column generation)', () => {
  it('re-solves from the last basis as columns are added, with the optimum and duals of a fresh solve', async () => {
    const highs = await loadHighsBackend();
    // Cover 4 of item 0 and 3 of item 1 at least cost; a third row caps what columns counted in it use.
    const master = highs.master!([
      { lower: 4, upper: Infinity },
      { lower: 3, upper: Infinity },
      { lower: -Infinity, upper: 5 },
    ]);
    master.addColumns([
      { cost: 2, upper: Infinity, rows: [[0, 1]] },
      { cost: 2, upper: Infinity, rows: [[1, 1]] },
    ]);
    const first = master.solve();
    expect(first.status).toBe('optimal');
    expect(first.objective).toBeCloseTo(14, 9);
    expect(first.duals[0]).toBeCloseTo(2, 9);
    expect(first.duals[1]).toBeCloseTo(2, 9);
    // A column covering both items at once, counted in the third row.
    master.addColumns([
      {
        cost: 3,
        upper: Infinity,
        rows: [
          [0, 1],
          [1, 1],
          [2, 1],
        ],
      },
    ]);
    const second = master.solve();
    expect(second.status).toBe('optimal');
    // Three of the new column cover item 1 and three of item 0; one more of item 0 alone.
    expect(second.objective).toBeCloseTo(3 * 3 + 2, 9);
    expect(Array.from(second.values)).toEqual([1, 0, 3].map((v) => expect.closeTo(v, 9)));
    expect(second.duals[0]).toBeCloseTo(2, 9);
    expect(second.duals[1]).toBeCloseTo(1, 9);
    master.dispose();
    expect(master.solve().status).toBe('error');
  });
});
