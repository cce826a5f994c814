/**
 * Quantities as people write them in YAML, CLI flags and overrides: cpu `500m` / `4`, memory `512Mi` /
 * `16Gi` / `1Ti`, GPUs `H100:8` or any-of `["H100:8", "A100-80GB:8"]`, durations `30m` / `2h`.
 *
 * Internally Gantry counts cpu in millicores, memory in MiB, GPUs in devices (fractions below one mean a
 * shared device) and durations in seconds.
 */
import { QuantityError } from './errors.ts';
import { type GpuModel, gpuModelNames, normalizeGpuModel } from './gpu.ts';
import { closest } from './suggest.ts';

/** One way to satisfy a GPU request: `count` devices of `model` (`'*'`: any model). */
export interface GpuOption {
  model: GpuModel | '*';
  count: number;
}

const CPU_RE = /^(\d+(?:\.\d+)?)(m?)$/;

/**
 * Parses a cpu quantity into millicores.
 *
 * @example
 * parseCpu('500m'); // 500
 * parseCpu(4);      // 4000
 */
export function parseCpu(value: string | number): number {
  if (typeof value === 'number') return positive(value * 1000, value, 'cpu');
  const m = CPU_RE.exec(value.trim());
  if (!m)
    throw new QuantityError(`'${value}' is not a cpu quantity: write cores (4, 0.5) or millicores (500m)`);
  const n = Number(m[1]);
  return positive(m[2] === 'm' ? n : n * 1000, value, 'cpu');
}

const MEM_UNITS: Record<string, number> = {
  Ki: 1 / 1024,
  Mi: 1,
  Gi: 1024,
  Ti: 1024 * 1024,
  Pi: 1024 * 1024 * 1024,
  // Decimal suffixes as Kubernetes reads them.
  k: 1000 / 1048576,
  M: 1e6 / 1048576,
  G: 1e9 / 1048576,
  T: 1e12 / 1048576,
};
const MEM_RE = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/;
const MEM_TYPOS: Record<string, string> = {
  kb: 'Ki',
  kib: 'Ki',
  mb: 'Mi',
  mib: 'Mi',
  gb: 'Gi',
  gib: 'Gi',
  tb: 'Ti',
  tib: 'Ti',
  g: 'Gi',
  m: 'Mi',
};

/**
 * Parses a memory quantity into MiB. Bare numbers are refused: `16` is far more often a typo for `16Gi`
 * than a request for sixteen bytes.
 *
 * @example
 * parseMemory('16Gi'); // 16384
 */
export function parseMemory(value: string | number): number {
  const text = String(value).trim();
  const m = MEM_RE.exec(text);
  if (!m) throw new QuantityError(`'${text}' is not a memory quantity: write it like 512Mi, 16Gi or 1Ti`);
  const [, num, unit = ''] = m;
  const factor = MEM_UNITS[unit];
  if (factor === undefined) {
    const fix = MEM_TYPOS[unit.toLowerCase()] ?? (unit === '' ? 'Gi' : undefined);
    const hint = fix ? `: did you mean ${num}${fix}?` : ': use Ki, Mi, Gi or Ti';
    throw new QuantityError(`'${text}' has no memory unit Gantry knows${hint}`);
  }
  return positive(Number(num) * factor, text, 'memory');
}

/**
 * Parses a GPU request: `H100:8`, `H100` (one device), `T4:0.5` (half of a shared device), `8` or `any:8`
 * (eight of any model), or a list of alternatives.
 *
 * @example
 * parseGpu(['H100:8', 'a100-80gb:8']); // [{ model: 'H100', count: 8 }, { model: 'A100-80GB', count: 8 }]
 */
export function parseGpu(value: string | number | readonly (string | number)[]): GpuOption[] {
  if (Array.isArray(value)) {
    if (value.length === 0) throw new QuantityError('an any-of GPU list needs at least one entry');
    return value.map((v) => parseGpuOne(v));
  }
  return [parseGpuOne(value as string | number)];
}

function parseGpuOne(value: string | number): GpuOption {
  if (typeof value === 'number') return { model: '*', count: gpuCount(String(value), String(value)) };
  const text = value.trim();
  const [name = '', countText, extra] = text.split(':');
  if (extra !== undefined)
    throw new QuantityError(`'${text}' is not a GPU request: write MODEL:COUNT, e.g. H100:8`);
  if (/^\d+(\.\d+)?$/.test(name) && countText === undefined)
    return { model: '*', count: gpuCount(name, text) };
  const count = countText === undefined ? 1 : gpuCount(countText, text);
  if (name === '*' || name.toLowerCase() === 'any') return { model: '*', count };
  const model = normalizeGpuModel(name);
  if (!model) {
    throw new QuantityError(
      `unknown GPU model '${name}'${suggestGpu(name)}; known models: ${gpuModelNames.join(', ')}`,
    );
  }
  return { model, count };
}

function gpuCount(text: string, whole: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || text.trim() === '') {
    throw new QuantityError(`'${whole}' has a bad GPU count '${text}': write a positive number`);
  }
  if (n > 1 && !Number.isInteger(n)) {
    throw new QuantityError(`'${whole}' asks for ${n} GPUs: above one device, GPU counts are whole numbers`);
  }
  if (n < 1 && !isSlice(n)) {
    throw new QuantityError(
      `'${whole}' asks for ${n} of a GPU: a shared device is sliced in tenths, so a fraction is 0.1 to 0.9 in steps of ${GPU_SLICE}`,
    );
  }
  return n;
}

/**
 * The smallest share of a GPU a task can hold: a shared device is sliced in tenths (as time-slicing and
 * MIG profiles allow), and each slice counts against GPU quotas as the 0.1 GPU it holds.
 */
export const GPU_SLICE = 0.1;

function isSlice(n: number): boolean {
  const tenths = n / GPU_SLICE;
  return n >= GPU_SLICE - 1e-9 && Math.abs(tenths - Math.round(tenths)) < 1e-9;
}

function suggestGpu(name: string): string {
  const near = closest(name, gpuModelNames);
  return near ? ` (did you mean ${near}?)` : '';
}

const DURATION_RE = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
const DURATION_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/**
 * Parses a duration into seconds: `90s`, `30m`, `2h`, `1h30m`, `1d`; a bare number is seconds.
 *
 * @example
 * parseDuration('1h30m'); // 5400
 */
export function parseDuration(value: string | number): number {
  if (typeof value === 'number') return positive(value, value, 'duration', true);
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return positive(Number(text), text, 'duration', true);
  let total = 0;
  let consumed = 0;
  for (const m of text.matchAll(DURATION_RE)) {
    if (m.index !== consumed) break;
    total += Number(m[1]) * (DURATION_SECONDS[m[2] ?? 's'] ?? 1);
    consumed += m[0].length;
  }
  if (consumed !== text.length || text.length === 0) {
    throw new QuantityError(`'${text}' is not a duration: write it like 90s, 30m, 2h or 1h30m`);
  }
  return positive(total, text, 'duration', true);
}

function positive(n: number, original: string | number, what: string, allowZero = false): number {
  if (!Number.isFinite(n) || n < 0 || (!allowZero && n === 0)) {
    throw new QuantityError(
      `'${original}' is not a valid ${what}: it must be ${allowZero ? 'zero or more' : 'positive'}`,
    );
  }
  return n;
}

/** Formats millicores for people: `500m`, `4`. */
export function formatCpu(milli: number): string {
  return milli % 1000 === 0 ? String(milli / 1000) : `${Math.round(milli)}m`;
}

/** Formats MiB for people with the largest binary unit that keeps it readable: `512Mi`, `16Gi`. */
export function formatMemory(mib: number): string {
  if (mib >= 1024 * 1024 && mib % (1024 * 1024) === 0) return `${mib / (1024 * 1024)}Ti`;
  if (mib >= 1024) return `${Number((mib / 1024).toFixed(2))}Gi`;
  return `${Number(mib.toFixed(2))}Mi`;
}

/** Formats GPU options back to their written form: `H100:8 | A100-80GB:8`. */
export function formatGpu(options: readonly GpuOption[]): string {
  return options.map((o) => (o.model === '*' ? `any:${o.count}` : `${o.model}:${o.count}`)).join(' | ');
}

/** Formats seconds as a short duration: `90s`, `30m`, `2h`, `1h30m`. */
export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${Number(seconds.toFixed(1))}s`;
  const h = Math.floor(seconds / 3600);
  const m = Math.round((seconds % 3600) / 60);
  if (h === 0) return `${m}m`;
  return m === 0 ? `${h}h` : `${h}h${m}m`;
}
