/**
 * Usage mistakes through the real `gantry` binary: a bad flag value, an unknown flag, a `--nats` URL of
 * another scheme and a file with no documents each get the one line that names the flag or the file,
 * with the documented exit code and nothing else printed.
 */
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { spawnGantry } from './cli.ts';

const tmp = mkdtempSync(join(tmpdir(), 'gantry-usage-'));
const file = (name: string, text: string) => {
  mkdirSync(join(tmp, name, '..'), { recursive: true });
  writeFileSync(join(tmp, name), text);
};
file('comments.yaml', '# the clusters go here\n---\n# and here\n');
file('empty.yaml', '');
file(
  'platform/profiles.yaml',
  'apiVersion: gantry.dev/v1alpha1\nkind: ResourceProfile\nmetadata: { name: small }\nspec: { cpu: 1 }\n---\n# more profiles to come\n---\n',
);
file('platform/later.yaml', '# policies, once they are written\n');
mkdirSync(join(tmp, 'no-yaml'));
// A workflow of the user's own, in a folder with no package.json (so Node reads .ts as CommonJS).
file('mine.ts', 'export const x = 1;\n');
const EXAMPLES = fileURLToPath(new URL('../examples', import.meta.url));

const NATS_HINT = 'write nats://<host>:<port>, or tls:// for TLS, e.g. nats://127.0.0.1:4222';

describe('usage mistakes', () => {
  it.each([
    [
      'a bad --since names the flag and what it takes',
      ['get', 'runs', '--since', '3x'],
      "gantry: --since must be a duration back from now (30m, 12h, 7d, 2w), a date (2026-11-01) or epoch milliseconds, not '3x'",
    ],
    [
      'a bad --until of report cost is named the same way',
      ['report', 'cost', '--until', 'yesterday'],
      "gantry: --until must be a duration back from now (30m, 12h, 7d, 2w), a date (2026-11-01) or epoch milliseconds, not 'yesterday'",
    ],
    [
      'an unknown flag is named before a missing required one',
      ['plan', '--frob'],
      "gantry: unknown option '--frob' (gantry plan --help lists them)",
    ],
    [
      'an unknown flag of a sub-command is named too',
      ['artifacts', 'gc', '--dryrun'],
      "gantry: unknown option '--dryrun'\n(Did you mean --dry-run?) (gantry artifacts gc --help lists them)",
    ],
    [
      'a missing required flag is still named when every flag is known',
      ['plan', '-f', 'examples'],
      "gantry: required option '-w, --workload <file>' not specified (gantry plan --help lists them)",
    ],
    [
      'an HTTP URL for --nats',
      ['get', 'nodes', '--nats', 'http://127.0.0.1:8222'],
      `gantry: option '--nats <url>' argument 'http://127.0.0.1:8222' is invalid. http:// is not a NATS URL (HTTP is the monitoring port): ${NATS_HINT} (gantry get nodes --help lists them)`,
    ],
    [
      'a WebSocket URL among several for --nats',
      ['run', 'examples/workflows/train.ts', '--team', 'research', '--nats', 'nats://a:4222,wss://b:443'],
      `gantry: option '--nats <url>' argument 'nats://a:4222,wss://b:443' is invalid. wss:// is not a NATS URL (the Node NATS client does not speak WebSocket): ${NATS_HINT} (gantry run --help lists them)`,
    ],
    [
      'a workflow file Node reads as CommonJS says how to make it a module',
      ['run', 'mine.ts', '--team', 'research', '-f', EXAMPLES],
      `gantry: mine.ts is read as CommonJS, as no package.json in its folder or above says "type": "module": add one there (echo '{"type":"module"}' > package.json), or name the file .mts`,
    ],
  ])('%s', async (_name, args, line) => {
    const r = await spawnGantry(args, { cwd: tmp });
    expect(r).toEqual({ code: 2, out: '', err: `${line}\n` });
  });

  it('refuses a file with no documents, naming it, as it is all there is', async () => {
    const r = await spawnGantry(['validate', '-f', 'comments.yaml', 'empty.yaml', 'no-yaml'], { cwd: tmp });
    expect(r.code).toBe(1);
    expect(r.out).toBe(
      [
        'comments.yaml  (document)  no documents: the file is empty or has only comments',
        'empty.yaml  (document)  no documents: the file is empty or has only comments',
        'no-yaml  (document)  no .yaml or .yml files in this directory',
        '',
      ].join('\n'),
    );
  });

  it('warns of a file with no documents beside files with some, and skips empty documents within one', async () => {
    const r = await spawnGantry(['validate', '-f', 'platform', '-q'], { cwd: tmp });
    expect(r).toEqual({
      code: 0,
      out: 'ok: 1 documents in 2 files, 0 pools\n',
      err: 'warning: platform/later.yaml  (document)  no documents: the file is empty or has only comments\n',
    });
  });

  it("runs a user's own workflow that imports gantry/runtime, as the README writes it", async () => {
    const repo = fileURLToPath(new URL('..', import.meta.url));
    file('project/package.json', '{"type":"module"}\n');
    mkdirSync(join(tmp, 'project', 'node_modules'));
    symlinkSync(repo, join(tmp, 'project', 'node_modules', 'gantry'));
    file(
      'project/hello.ts',
      "import { task, z } from 'gantry/runtime';\n" +
        "export default task({ name: 'hello', input: z.object({ who: z.string() }), output: z.string() },\n" +
        '  async ({ who }) => `hello ${who}`);\n',
    );
    const r = await spawnGantry(
      ['run', 'hello.ts', '--team', 'research', '--input', '{"who":"ml"}', '-f', EXAMPLES, '-o', 'json'],
      { cwd: join(tmp, 'project'), timeoutMs: 90_000 },
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ ok: true, output: 'hello ml' });
  }, 120_000);
});
