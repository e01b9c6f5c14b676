import { readFile } from 'node:fs/promises';
import { UserError, abortError } from '../../errors.js';
import type { BlobCache } from '../../oci/blob-cache.js';
import type { BlobRef } from '../../oci/descriptor.js';
import { isDigest, sha256Digest } from '../../oci/digest.js';
import type { DaemonImages, InspectInfo } from './daemon.js';
import type { LayerStore, StoredLayer } from './layers.js';
import { readDockerSave } from './save-archive.js';

/** An image's config and layers, in the blob cache. */
export interface ExportedImage {
  config: BlobRef;
  configBytes: Buffer;
  layers: StoredLayer[];
}

/**
 * `docker save` of the pinned image streamed into the blob cache (layers gzip-compressed, verified
 * against the config's diff_ids; config verified against the image ID and stored).
 */
export async function exportImage(
  daemon: DaemonImages,
  item: string,
  name: string,
  imageId: string,
  c: { store: LayerStore; cache: BlobCache; signal: AbortSignal },
): Promise<ExportedImage & { format: 'docker-archive' | 'oci-layout' }> {
  let stream: NodeJS.ReadableStream;
  try {
    stream = (await daemon.docker.getImage(name).get()) as NodeJS.ReadableStream;
  } catch (e) {
    throw daemon.apiError(e, `exporting ${item} (docker save)`);
  }
  const onAbort = () => (stream as unknown as { destroy: (e?: Error) => void }).destroy(abortError());
  c.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const saved = await readDockerSave(stream as AsyncIterable<Buffer>, { image: item, imageId, store: c.store, signal: c.signal });
    await c.cache.putBuffer({ digest: saved.config.digest, size: saved.config.size }, saved.config.bytes, item, 'config');
    return { config: { digest: saved.config.digest, size: saved.config.size }, configBytes: saved.config.bytes, layers: saved.layers, format: saved.format };
  } catch (e) {
    (stream as unknown as { destroy: () => void }).destroy();
    if (e instanceof UserError || c.signal.aborted) throw e;
    throw daemon.apiError(e, `exporting ${item} (docker save)`);
  } finally {
    c.signal.removeEventListener('abort', onAbort);
  }
}

/** An image whose config and every layer are already in the cache needs no `docker save`. */
export async function exportedFromCache(info: InspectInfo, cache: BlobCache, store: LayerStore): Promise<ExportedImage | undefined> {
  const diffIds = info.RootFS?.Layers;
  const id = info.Id;
  if (!diffIds || !isDigest(id)) return undefined;
  let configBytes: Buffer;
  try {
    configBytes = await readFile(cache.path(id));
  } catch {
    return undefined;
  }
  if (sha256Digest(configBytes) !== id) return undefined;
  const layers: StoredLayer[] = [];
  for (const d of diffIds) {
    const l = await store.lookup(d);
    if (!l) return undefined;
    layers.push(l);
  }
  return { config: { digest: id, size: configBytes.length }, configBytes, layers };
}
