/**
 * The artifact store over NATS: a JetStream Object Store bucket, one object per content hash. Kept
 * apart from `artifacts.ts` so embedded mode never loads the NATS client.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { Objm } from '@nats-io/obj';
import { type ArtifactStore, ArtifactMissingError, contentRef, refDigest } from './artifacts.ts';

/**
 * Opens (creating when missing) the object store bucket `bucket`.
 *
 * @example
 * const artifacts = await openJetStreamArtifacts(transport.connection, 'gantry-artifacts');
 */
export async function openJetStreamArtifacts(
  nc: NatsConnection,
  bucket = 'gantry-artifacts',
): Promise<ArtifactStore> {
  const os = await new Objm(nc).create(bucket);
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
  };
}
