import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isMap, isScalar, isSeq, parseDocument, type Document } from 'yaml';
import { buildPlatform, loadBuiltinCatalog, parseDocuments } from './index.ts';

const FILES = [
  'examples/clusters/aws-us-east-1.yaml',
  'examples/clusters/onprem.yaml',
  'examples/policies/research.yaml',
  'examples/policies/product.yaml',
  'examples/profiles/profiles.yaml',
  'examples/workloads/nightly.yaml',
].map((f) => readFileSync(f, 'utf8'));

/** Every path to a node in the first document of a YAML text. */
function paths(doc: Document): (string | number)[][] {
  const out: (string | number)[][] = [];
  const walk = (node: unknown, at: (string | number)[]) => {
    out.push(at);
    if (isMap(node))
      for (const p of node.items) walk(p.value, [...at, isScalar(p.key) ? String(p.key.value) : '?']);
    else if (isSeq(node)) node.items.forEach((v, i) => walk(v, [...at, i]));
  };
  walk(doc.contents, []);
  return out.filter((p) => p.length > 0);
}

const junk = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.integer({ min: -1e6, max: 1e6 }),
  fc.double({ noNaN: false }),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom('16GB', 'H900:8', '-1', 'spotty', '1.5', '', '500m', '2h', 'A100:0.5', '{', '[]'),
  fc.array(fc.string({ maxLength: 4 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 2 }),
);

type Mutation =
  | { kind: 'set'; at: number; value: unknown }
  | { kind: 'delete'; at: number }
  | { kind: 'add'; at: number; key: string; value: unknown }
  | { kind: 'text'; pos: number; insert: string };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: junk }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('add' as const),
    at: fc.nat(),
    key: fc.string({ minLength: 1, maxLength: 10 }),
    value: junk,
  }),
  fc.record({
    kind: fc.constant('text' as const),
    pos: fc.nat(),
    insert: fc.constantFrom(':', '- ', '\n', '  ', '"', '{', '#', '---\n', '\t', 'x: ['),
  }),
);

function mutate(text: string, ms: Mutation[]): string {
  let out = text;
  for (const m of ms) {
    if (m.kind === 'text') {
      const pos = m.pos % (out.length + 1);
      out = out.slice(0, pos) + m.insert + out.slice(pos);
      continue;
    }
    const doc = parseDocument(out);
    if (doc.errors.length > 0) continue;
    const all = paths(doc);
    if (all.length === 0) continue;
    const at = all[m.at % all.length]!;
    if (m.kind === 'set') doc.setIn(at, m.value);
    else if (m.kind === 'delete') doc.deleteIn(at);
    else {
      const target = doc.getIn(at, true);
      if (isMap(target)) target.set(m.key, m.value);
    }
    out = doc.toString();
  }
  return out;
}

describe('validation of randomly broken documents', () => {
  it('never throws, and every problem names a line, a column and a message', () => {
    const catalog = loadBuiltinCatalog();
    let broken = 0;
    fc.assert(
      fc.property(
        fc.constantFrom(...FILES.keys()),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        (i, ms) => {
          const text = mutate(FILES[i]!, ms);
          const { docs, problems } = parseDocuments(text, 'fuzz.yaml');
          const all = [...problems, ...buildPlatform(docs, catalog).problems];
          if (all.length > 0) broken++;
          for (const p of all) {
            expect(p.file).toBe('fuzz.yaml');
            expect(p.line).toBeGreaterThanOrEqual(1);
            expect(p.col).toBeGreaterThanOrEqual(1);
            expect(p.message.length).toBeGreaterThan(0);
            expect(p.message).not.toMatch(/\n\s+at /); // no stack traces
          }
        },
      ),
      { numRuns: 400, seed: 2026 },
    );
    // The mutations do break documents: most runs report problems (the rest stayed valid).
    expect(broken).toBeGreaterThan(200);
  });
});
