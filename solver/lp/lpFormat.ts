/**
 * Writes a normalised model as CPLEX LP text, the input of HiGHS's one-shot `solve()`. The HiGHS backend
 * no longer uses it (it hands HiGHS sparse arrays, see `highsModel.ts`); it stays while a scratch script
 * (`solver/bench/opt.tmp.ts`) imports it, and can be deleted with that script.
 *
 * What HiGHS 1.15's reader was measured to accept and reject (tests pinning this were dropped with the
 * switch to arrays):
 * - the ranged-row syntax `c: 2 <= x + y <= 5` makes it abort ("Unable to read LP model … RuntimeError:
 *   Aborted"), so a row with two different finite sides is written as two rows, `cNl` (≥) and `cNu` (≤);
 * - numbers in JavaScript's shortest round-trip form parse exactly, exponents included (`1e-7`,
 *   `2.5e+21`), so `String(n)` is used and no precision is lost;
 * - a bound line `x <= -2` does *not* lower the default lower bound of 0 (the model becomes infeasible),
 *   so both sides are always written, with `-inf` / `free` for open ones;
 * - a column that appears nowhere is absent from `Columns`, so every variable is written into the
 *   objective, with a 0 cost if need be;
 * - terms may continue on following lines, which keeps lines short for large rows.
 *
 * Names are internal only (`x12`, `c7`): caller names may hold characters the format reserves.
 */
import type { NormalLp } from './model.ts';

/** Terms written per line; lines stay well under the 255/560-character limits some LP readers have. */
const TERMS_PER_LINE = 8;

/** CPLEX LP text for `lp`; variable `j` is named `x{j}`, row `i` is `c{i}` (or `c{i}l` and `c{i}u`). */
export function toCplexLp(lp: NormalLp): string {
  const n = lp.cost.length;
  const out: string[] = ['Minimize'];
  const all = Array.from({ length: n }, (_, j) => j);
  out.push(` obj: ${linear(all, Array.from(lp.cost))}`);
  out.push('Subject To');
  for (const row of lp.rows) {
    const expr = linear(row.vars, row.coefs);
    const name = `c${row.index}`;
    if (row.lower === row.upper) out.push(` ${name}: ${expr} = ${num(row.lower)}`);
    else if (row.lower === -Infinity) out.push(` ${name}: ${expr} <= ${num(row.upper)}`);
    else if (row.upper === Infinity) out.push(` ${name}: ${expr} >= ${num(row.lower)}`);
    else {
      out.push(` ${name}l: ${expr} >= ${num(row.lower)}`);
      out.push(` ${name}u: ${expr} <= ${num(row.upper)}`);
    }
  }
  out.push('Bounds');
  for (let j = 0; j < n; j++) {
    const line = boundLine(`x${j}`, lp.lower[j] ?? 0, lp.upper[j] ?? Infinity);
    if (line !== undefined) out.push(` ${line}`);
  }
  out.push('End', '');
  return out.join('\n');
}

/** Bound line for one column, or undefined for the LP-format default [0, +inf). */
function boundLine(name: string, lower: number, upper: number): string | undefined {
  if (lower === 0 && upper === Infinity) return undefined;
  if (lower === -Infinity && upper === Infinity) return `${name} free`;
  if (lower === upper) return `${name} = ${num(lower)}`;
  if (upper === Infinity) return `${name} >= ${num(lower)}`;
  return `${lower === -Infinity ? '-inf' : num(lower)} <= ${name} <= ${num(upper)}`;
}

/** `a x0 - b x3 + …`, broken into continuation lines of TERMS_PER_LINE terms. */
function linear(vars: readonly number[], coefs: readonly number[]): string {
  if (vars.length === 0) return '0 x0';
  let s = '';
  vars.forEach((j, k) => {
    const c = coefs[k] ?? 0;
    const sign = c < 0 ? '-' : '+';
    if (k === 0) s += c < 0 ? `- ${num(-c)} x${j}` : `${num(c)} x${j}`;
    else s += `${k % TERMS_PER_LINE === 0 ? '\n  ' : ' '}${sign} ${num(Math.abs(c))} x${j}`;
  });
  return s;
}

/** Shortest decimal that round-trips to the same double; `-0` is written as `0`. */
export function num(x: number): string {
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  return Object.is(x, -0) ? '0' : String(x);
}
