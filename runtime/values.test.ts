import { describe, expect, it } from 'vitest';
import { contentRef, openLocalArtifacts } from './artifacts.ts';
import { TaskError } from './errors.ts';
import { decodeValue, encodeValue } from './values.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('values are checked against their content hash', () => {
  it('an inline value altered on the way is a TaskError naming both hashes', async () => {
    const artifacts = await openLocalArtifacts(mkdtempSync(join(tmpdir(), 'gantry-values-')));
    const msg = await encodeValue({ rows: 3 }, artifacts);
    expect(await decodeValue(msg, artifacts)).toEqual({ rows: 3 });
    const forged = { inline: { rows: 4 }, hash: (msg as { hash: string }).hash };
    const err = await decodeValue(forged, artifacts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).data).toEqual({ hash: forged.hash, actual: contentRef('{"rows":4}') });
  });
});
