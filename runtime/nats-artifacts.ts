/**
 * The artifact store over NATS: a JetStream Object Store bucket, one object per content hash. Kept
 * apart from `artifacts.ts` so embedded mode never loads the NATS client.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { Objm } from '@nats-io/obj';
import { ArtifactMissingError, type CollectableArtifactStore, contentRef, refDigest } from './artifacts.ts';

/**
 * Opens (creating when missing) the object store bucket `bucket`, with `replicas` JetStream replicas
 * when it creates it (3 on a 3-server NATS cluster, as the broker's `--replicas`).
 *
 * @example
 * const artifacts = await openJetStreamArtifacts(transport.connection, 'gantry-artifacts');
 */
export async function openJetStreamArtifacts(
  nc: NatsConnection,
  bucket = 'gantry-artifacts',
  replicas = 1,
): Promise<CollectableArtifactStore> {
  const os = await new Objm(nc).create(bucket, { replicas });
  return {
    kind: 'jetstream',
    async put(data) {
      const ref = contentRef(data);
      const name = refDigest(ref);
      const info = await os.info(name);
      if (!info || info.deleted) await os.putBlob({ name }, data);
      return ref;
    },
    async get(ref) {
      const data = await os.getBlob(refDigest(ref));
      if (!data) throw new ArtifactMissingError(ref);
      return data;
    },
    async *list() {
      for (const o of await os.list())
        if (!o.deleted && /^[0-9a-f]{64}$/.test(o.name))
          yield { ref: `sha256:${o.name}`, bytes: o.size, storedAt: Date.parse(o.mtime) };
    },
    async delete(ref) {
      const name = refDigest(ref);
      const info = await os.info(name);
      if (info && !info.deleted) await os.delete(name);
    },
  };
}
