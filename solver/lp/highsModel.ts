/**
 * Lays a normalised model out as the sparse arrays of HiGHS's model API (`highs.createModel`). This
 * replaced writing CPLEX LP text for HiGHS to parse, which took about a third of a 27K-variable solve.
 *
 * The matrix is handed over column-wise (CSC) because HiGHS stores it that way: given rows (CSR),
 * `createModel` spent 25–65 ms transposing a 27K-variable model inside the wasm, against about 10 ms for
 * the transpose here plus 15 ms to load it. Duplicate terms were already summed and zeros dropped by
 * `normalizeModel`, so no column lists a row twice. Bounds go in as they are: ±Infinity is HiGHS's own
 * infinity (`highs.infinity`), and a ranged row is one row with two finite sides.
 */
import type { ModelData } from 'highs';
import type { NormalLp } from './model.ts';

/**
 * The HiGHS model for `lp`. Column j is variable j; row r is `lp.rows[r]` (free and empty rows were
 * dropped by `normalizeModel`, so r is not the caller's constraint index). The arrays are `lp`'s own or
 * fresh; HiGHS copies them.
 */
export function toHighsModel(lp: NormalLp): ModelData {
  const n = lp.cost.length;
  const m = lp.rows.length;
  const rowLower = new Float64Array(m);
  const rowUpper = new Float64Array(m);
  // starts[j + 1] counts column j's entries, then becomes the running end of columns 0..j.
  const starts = new Int32Array(n + 1);
  lp.rows.forEach((row, r) => {
    rowLower[r] = row.lower;
    rowUpper[r] = row.upper;
    for (const j of row.vars) starts[j + 1]! += 1;
  });
  for (let j = 0; j < n; j++) starts[j + 1]! += starts[j]!;
  const nonzeros = starts[n]!;
  const indices = new Int32Array(nonzeros);
  const values = new Float64Array(nonzeros);
  const next = starts.slice(0, n); // next free slot of each column
  lp.rows.forEach((row, r) => {
    for (let t = 0; t < row.vars.length; t++) {
      const slot = next[row.vars[t]!]!++;
      indices[slot] = r;
      values[slot] = row.coefs[t]!;
    }
  });
  return {
    numCols: n,
    numRows: m,
    colCost: lp.cost,
    colLower: lp.lower,
    colUpper: lp.upper,
    rowLower,
    rowUpper,
    matrix: { format: 'csc', numRows: m, numCols: n, starts, indices, values },
  };
}
