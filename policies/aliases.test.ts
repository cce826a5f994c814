import { describe, expect, it } from 'vitest';
import { parseDocuments } from './load.ts';

const head = 'apiVersion: gantry.dev/v1alpha1\nkind: ResourceProfile\nmetadata: { name: p }\n';

describe('YAML aliases', () => {
  it('are resolved when their anchor is set before them', () => {
    const text =
      'apiVersion: gantry.dev/v1alpha1\nkind: ResourceProfile\nmetadata: { name: &n gpu-train }\nspec: { description: *n }\n';
    const { docs, problems } = parseDocuments(text, 'p.yaml');
    expect(problems).toEqual([]);
    expect((docs[0]!.value as { spec: { description: string } }).spec.description).toBe('gpu-train');
  });

  it('an alias to no anchor is a problem at its line', () => {
    const { problems } = parseDocuments(`${head}spec:\n  cpu: *nope\n`, 'p.yaml');
    expect(problems).toEqual([
      {
        file: 'p.yaml',
        line: 5,
        col: 8,
        path: '',
        message: 'YAML: alias *nope refers to no anchor &nope before it',
      },
    ]);
  });

  it('an alias bomb is refused at its first alias, without expanding it', () => {
    const lines = [head.trimEnd(), 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 12; i++)
      lines.push(
        `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    lines.push('spec: { description: *a11 }');
    const { problems } = parseDocuments(`${lines.join('\n')}\n`, 'bomb.yaml');
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: 'bomb.yaml', line: 5, col: 10 });
    expect(problems[0]!.message).toMatch(/more than 100 nodes/);
  });
});
