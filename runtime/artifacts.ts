/**
 * Content-addressed artifact stores for values too large to travel inline: a local directory in
 * embedded mode, a JetStream Object Store over NATS (`nats-artifacts.ts`). An artifact's name is the
 * sha256 of its bytes, so writing the same value twice stores it once and a reader can check what it got.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Stores and fetches immutable byte strings by content hash (`sha256:<hex>`). */
export interface ArtifactStore {
  /** `local` or `jetstream`. */
  readonly kind: string;
  /** Stores `data`; resolves with its ref once durable. */
  put(data: Uint8Array): Promise<string>;
  /** The bytes of `ref`; rejects with `ArtifactMissingError` when absent. */
  get(ref: string): Promise<Uint8Array>;
}

/** A value in a store, as garbage collection sees it. */
export interface StoredArtifact {
  ref: string;
  bytes: number;
  /** When it was written (epoch ms). */
  storedAt: number;
}

/** A store whose values can be listed and deleted (`gantry artifacts gc`). */
export interface CollectableArtifactStore extends ArtifactStore {
  /** Every value held now. */
  list(): AsyncIterable<StoredArtifact>;
  /** Deletes `ref` (absent is fine). */
  delete(ref: string): Promise<void>;
}

/** An artifact that is not in the store (deleted, or written to another store). */
export class ArtifactMissingError extends Error {
  override name = 'ArtifactMissingError';
  constructor(readonly ref: string) {
    super(`artifact ${ref} is not in the artifact store`);
  }
}

/** `sha256:<hex>` of some bytes. */
export function contentRef(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

const REF = /^sha256:([0-9a-f]{64})$/;

/** The hex digest of a ref; throws on anything else (refs come from the wire). */
export function refDigest(ref: string): string {
  const m = REF.exec(ref);
  if (!m) throw new Error(`not an artifact ref: '${ref.slice(0, 80)}'`);
  return m[1]!;
}

/**
 * Opens an artifact directory: `<dir>/<first two hex digits>/<hex>`. Writes go to a temporary file
 * and are renamed into place, so concurrent writers (worker processes) never expose half a file.
 *
 * @example
 * const artifacts = await openLocalArtifacts('.gantry/artifacts');
 * const ref = await artifacts.put(new TextEncoder().encode('{"rows":1}'));
 */
export async function openLocalArtifacts(dir: string): Promise<CollectableArtifactStore> {
  await mkdir(dir, { recursive: true });
  const pathOf = (ref: string) => {
    const hex = refDigest(ref);
    return join(dir, hex.slice(0, 2), hex);
  };
  return {
    kind: 'local',
    async put(data) {
      const ref = contentRef(data);
      const path = pathOf(ref);
      const exists = await stat(path).then(
        (s) => s.size === data.byteLength,
        () => false,
      );
      if (!exists) {
        await mkdir(join(path, '..'), { recursive: true });
        const tmp = `${path}.${randomUUID()}.tmp`;
        await writeFile(tmp, data);
        await rename(tmp, path);
      }
      return ref;
    },
    async get(ref) {
      try {
        return new Uint8Array(await readFile(pathOf(ref)));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ArtifactMissingError(ref);
        throw err;
      }
    },
    async *list() {
      for (const sub of (await readdir(dir)).filter((d) => /^[0-9a-f]{2}$/.test(d)).sort())
        for (const name of (await readdir(join(dir, sub))).sort()) {
          if (!/^[0-9a-f]{64}$/.test(name)) continue;
          const s = await stat(join(dir, sub, name)).catch(() => undefined);
          if (s) yield { ref: `sha256:${name}`, bytes: s.size, storedAt: s.mtimeMs };
        }
    },
    async delete(ref) {
      await rm(pathOf(ref), { force: true });
    },
  };
}
