/**
 * Reads YAML documents from files and directories, validates each against its kind's schema, and keeps
 * where every value came from so that any problem (schema or cross-document) names `file:line:col`.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import {
  isMap,
  isPair,
  isScalar,
  LineCounter,
  parseAllDocuments,
  visit,
  type Alias,
  type Document,
  type Node,
} from 'yaml';
import type { z } from 'zod';
import type { Problem } from './errors.ts';
import { API_VERSION, KINDS, type KindName } from './kinds.ts';
import { closest } from './suggest.ts';

type PathKey = string | number;

/** One validated document with the means to locate any of its fields in the source. */
export interface LoadedDoc<K extends KindName = KindName> {
  kind: K;
  name: string;
  file: string;
  /** 0-based index of the document within its file. */
  index: number;
  value: z.output<(typeof KINDS)[K]>;
  /** Location of a field by path, falling back to the nearest ancestor that exists. */
  locate(path: readonly PathKey[]): { line: number; col: number };
}

/** What loading found: the documents that validated and every problem with the others. */
export interface LoadResult {
  docs: LoadedDoc[];
  problems: Problem[];
  files: string[];
  /** Files that hold no document at all: empty, or only comments and `---`. */
  empty: string[];
}

/**
 * Loads every `.yaml` / `.yml` file under the given files and directories (recursively, in name order).
 *
 * @example
 * const { docs, problems } = loadDocuments(['examples/']);
 */
export function loadDocuments(paths: readonly string[], cwd = process.cwd()): LoadResult {
  const result: LoadResult = { docs: [], problems: [], files: [], empty: [] };
  for (const p of paths) {
    const files = expand(p, result.problems);
    if (files.length === 0 && result.problems.at(-1)?.file !== p)
      result.problems.push({
        file: p,
        line: 0,
        col: 0,
        path: '',
        message: 'no .yaml or .yml files in this directory',
      });
    for (const file of files) {
      result.files.push(file);
      const shown = relative(cwd, file) || file;
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        result.problems.push({
          file: shown,
          line: 0,
          col: 0,
          path: '',
          message: `cannot read: ${(err as Error).message}`,
        });
        continue;
      }
      const parsed = parseDocuments(text, shown);
      if (parsed.docs.length === 0 && parsed.problems.length === 0) result.empty.push(shown);
      result.docs.push(...parsed.docs);
      result.problems.push(...parsed.problems);
    }
  }
  return result;
}

function expand(path: string, problems: Problem[]): string[] {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    problems.push({ file: path, line: 0, col: 0, path: '', message: 'no such file or directory' });
    return [];
  }
  if (stat.isFile()) return [path];
  const found: string[] = [];
  for (const entry of readdirSync(path, { withFileTypes: true }).sort((a, b) =>
    a.name.localeCompare(b.name),
  )) {
    const full = join(path, entry.name);
    if (entry.isDirectory()) found.push(...expand(full, problems));
    else if (/\.ya?ml$/.test(entry.name)) found.push(full);
  }
  return found;
}

/**
 * Parses and validates the documents in one YAML text. `file` is only used to label problems.
 *
 * @example
 * const { docs, problems } = parseDocuments(text, 'cluster.yaml');
 */
export function parseDocuments(text: string, file: string): { docs: LoadedDoc[]; problems: Problem[] } {
  const lineCounter = new LineCounter();
  const docs: LoadedDoc[] = [];
  const problems: Problem[] = [];
  const yamlDocs = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  // parseAllDocuments returns an EmptyStream (not an array) for an empty text.
  const list = Array.isArray(yamlDocs) ? yamlDocs : [];
  list.forEach((doc, index) => {
    const at = (offset: number) => lineCounter.linePos(offset);
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const { line, col } = at(e.pos[0]);
        problems.push({ file, line, col, path: '', message: `YAML: ${e.message.split('\n')[0]}` });
      }
      return;
    }
    // An empty document: nothing (or only comments) before, between or after `---` lines.
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.source === '')) return;
    const locate = (path: readonly PathKey[]) => at(offsetOf(doc, path));
    const problem = (path: readonly PathKey[], message: string): Problem => ({
      file,
      ...locate(path),
      path: formatPath(path),
      message,
    });
    let raw: unknown;
    try {
      // Aliases are resolved, at most MAX_ALIASES of them: more is an alias bomb, not configuration.
      raw = doc.toJS({ maxAliasCount: MAX_ALIASES });
    } catch (err) {
      problems.push(aliasProblem(doc, err, file, at));
      return;
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      problems.push(problem([], 'a document must be a mapping with apiVersion, kind, metadata and spec'));
      return;
    }
    const { kind, apiVersion } = raw as Record<string, unknown>;
    if (typeof kind !== 'string' || !Object.hasOwn(KINDS, kind)) {
      const hint = typeof kind === 'string' ? closest(kind, Object.keys(KINDS)) : undefined;
      const known = Object.keys(KINDS).join(', ');
      const message =
        kind === undefined
          ? `missing kind: one of ${known}`
          : `unknown kind '${String(kind)}'${hint ? ` (did you mean ${hint}?)` : ''}; known kinds: ${known}`;
      problems.push(problem(kind === undefined ? [] : ['kind'], message));
      return;
    }
    if (apiVersion !== API_VERSION) {
      problems.push(
        problem(apiVersion === undefined ? [] : ['apiVersion'], `apiVersion must be ${API_VERSION}`),
      );
      return;
    }
    const schema = KINDS[kind as KindName];
    const parsed = schema.safeParse(raw);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) problems.push(...describeIssue(issue, doc, schema, problem));
      return;
    }
    docs.push({
      kind: kind as KindName,
      name: parsed.data.metadata.name,
      file,
      index,
      value: parsed.data,
      locate,
    });
  });
  return { docs, problems };
}

/** Most aliases one document may expand (the yaml library's `maxAliasCount`). */
const MAX_ALIASES = 100;

/**
 * The problem of a document whose aliases cannot be resolved: one naming an anchor never set (at the
 * alias), or too many expansions (at the first alias). Anything else `toJS` throws is reported as is.
 */
function aliasProblem(
  doc: Document.Parsed,
  err: unknown,
  file: string,
  at: (offset: number) => { line: number; col: number },
): Problem {
  let unresolved: Alias | undefined;
  let first: Alias | undefined;
  visit(doc, {
    Alias(_, node) {
      first ??= node;
      if (!unresolved && node.resolve(doc) === undefined) unresolved = node;
    },
  });
  const where = (node: Alias | undefined) => (node?.range ? at(node.range[0]) : { line: 1, col: 1 });
  if (unresolved)
    return {
      file,
      ...where(unresolved),
      path: '',
      message: `YAML: alias *${unresolved.source} refers to no anchor &${unresolved.source} before it`,
    };
  if (err instanceof Error && /alias count/i.test(err.message))
    return {
      file,
      ...where(first),
      path: '',
      message: `YAML: aliases expand to more than ${MAX_ALIASES} nodes (an alias bomb?); write the values out`,
    };
  return {
    file,
    ...where(first),
    path: '',
    message: `YAML: ${err instanceof Error ? err.message : String(err)}`,
  };
}

type MakeProblem = (path: readonly PathKey[], message: string) => Problem;

function describeIssue(
  issue: z.core.$ZodIssue,
  doc: Document,
  schema: z.ZodType,
  problem: MakeProblem,
): Problem[] {
  const path = issue.path.filter((k): k is PathKey => typeof k !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    const known = keysAt(schema, path);
    return issue.keys.map((key) => {
      const hint = closest(key, known);
      return problem([...path, key], `unknown field '${key}'${hint ? ` (did you mean '${hint}'?)` : ''}`);
    });
  }
  const present = doc.hasIn(path);
  if (issue.code === 'invalid_type' && !present) {
    const parentPresent = path.length === 0 || doc.hasIn(path.slice(0, -1));
    return [
      problem(parentPresent ? path.slice(0, -1) : path, `missing required field '${String(path.at(-1))}'`),
    ];
  }
  if (issue.code === 'invalid_union' && 'note' in issue && issue.note === 'No matching discriminator') {
    const at = path.at(-1) === 'resource' ? path : [...path, 'resource'];
    return [problem(at, 'must be one of cpu, memory, gpu')];
  }
  if (issue.code === 'invalid_value' && issue.values.every((v) => typeof v === 'string')) {
    const values = issue.values as string[];
    const given = doc.getIn(path);
    const hint = typeof given === 'string' ? closest(given, values) : undefined;
    return [problem(path, `must be one of ${values.join(', ')}${hint ? ` (did you mean '${hint}'?)` : ''}`)];
  }
  return [problem(path, issue.message.replace(/^Invalid input: /, ''))];
}

/** The source offset of the value at `path`, or of its nearest existing ancestor. */
function offsetOf(doc: Document, path: readonly PathKey[]): number {
  for (let depth = path.length; depth >= 0; depth--) {
    const prefix = path.slice(0, depth);
    const parent = prefix.length === 0 ? doc.contents : doc.getIn(prefix.slice(0, -1), true);
    const last = prefix.at(-1);
    if (prefix.length > 0 && isMap(parent)) {
      // Point at the key of a mapping entry, which is where people look for a field.
      const pair = parent.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === last);
      const keyNode = pair?.key as Node | undefined;
      if (keyNode?.range) return keyNode.range[0];
      continue;
    }
    const node = prefix.length === 0 ? doc.contents : (doc.getIn(prefix, true) as Node | undefined);
    if (node && typeof node === 'object' && 'range' in node && node.range) return node.range[0];
  }
  return doc.range?.[0] ?? 0;
}

/** `spec.pools[1].maxNodes` */
export function formatPath(path: readonly PathKey[]): string {
  return path.reduce<string>(
    (out, k) => (typeof k === 'number' ? `${out}[${k}]` : out ? `${out}.${k}` : String(k)),
    '',
  );
}

/** Field names the schema allows at `path`, for "did you mean" hints. */
function keysAt(schema: z.ZodType, path: readonly PathKey[]): string[] {
  let s: z.ZodType | undefined = schema;
  for (const key of path) {
    s = unwrap(s);
    if (!s) return [];
    const def = (s as { def: { type: string } }).def;
    if (def.type === 'object') s = (s as z.ZodObject).shape[key as string] as z.ZodType | undefined;
    else if (def.type === 'array') s = (s as z.ZodArray<z.ZodType>).element;
    else return [];
  }
  s = unwrap(s);
  return s && (s as { def: { type: string } }).def.type === 'object'
    ? Object.keys((s as z.ZodObject).shape)
    : [];
}

function unwrap(s: z.ZodType | undefined): z.ZodType | undefined {
  while (s) {
    const def = (s as { def: { type: string; innerType?: z.ZodType; in?: z.ZodType } }).def;
    if ((def.type === 'optional' || def.type === 'default' || def.type === 'nullable') && def.innerType)
      s = def.innerType;
    else if (def.type === 'pipe' && def.in) s = def.in;
    else return s;
  }
  return s;
}
