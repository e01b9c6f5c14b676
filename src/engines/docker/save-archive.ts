import { posix } from 'node:path';
import { UserError, abortReason } from '../../errors.js';
import type { BlobRef } from '../../oci/descriptor.js';
import { sha256Digest } from '../../oci/digest.js';
import type { LayerStore, StoredLayer } from './layers.js';
import { readTar, TarFormatError } from './tar-reader.js';

/**
 * Reads ONE image from a `docker save` stream, in either form Docker writes:
 *   - legacy docker-archive (Docker < 25): `manifest.json`, `<imageid>.json` config, `<v1id>/layer.tar`
 *     (a layer shared with an earlier entry is a symlink `../<other>/layer.tar`), `repositories`;
 *   - OCI layout (Docker ≥ 25): `blobs/sha256/<hex>` (configs, manifests, layers), `index.json`,
 *     `manifest.json`, `oci-layout`.
 * Layers stream straight into the LayerStore (gzip, blob cache); small JSON entries are kept in memory.
 * The config must hash to the image ID the daemon reported, and every layer's uncompressed digest must be
 * the config's rootfs.diff_ids entry at its position.
 */
export interface SavedImage {
  config: BlobRef & { bytes: Buffer };
  layers: StoredLayer[];
  format: 'docker-archive' | 'oci-layout';
}

/** Entries this large or smaller are read into memory (configs, manifests); larger ones are layers. */
const SMALL = 1 << 20;

type SaveOptions = { image: string; imageId: string; store: LayerStore; signal?: AbortSignal | undefined; onBytes?: (n: number) => void };

/** What the stream held: small JSON documents by path, stored layers by path, links (path → target). */
interface SaveEntries {
  json: Map<string, Buffer>;
  layers: Map<string, StoredLayer>;
  links: Map<string, string>;
  sawOciLayout: boolean;
}

export async function readDockerSave(stream: AsyncIterable<Buffer | string>, opts: SaveOptions): Promise<SavedImage> {
  const { json, layers, links, sawOciLayout } = await readEntries(stream, opts);
  const resolve = (p: string): string => {
    let cur = posix.normalize(p);
    for (let i = 0; i < 16 && links.has(cur); i++) cur = links.get(cur)!;
    return cur;
  };
  const entry = saveManifestEntry(json, opts.image);
  const configBytes = json.get(resolve(entry.Config));
  if (!configBytes) throw UserError.runtime('docker', `the Docker daemon's export of ${opts.image} lacks its config ${entry.Config}`);
  const configDigest = sha256Digest(configBytes);
  if (configDigest !== opts.imageId) {
    throw UserError.runtime(
      'digest-mismatch',
      `verification failed for ${opts.image}: the exported config hashes to ${configDigest}, but the daemon reports image ID ${opts.imageId}`,
      'the image changed while it was being exported, or the daemon is not using content-addressed image IDs; build again',
    );
  }
  const diffIds = configDiffIds(configBytes, entry, opts.image);
  const out: StoredLayer[] = entry.Layers.map((p, i) => {
    const l = layers.get(resolve(p));
    if (!l) throw UserError.runtime('docker', `the Docker daemon's export of ${opts.image} lacks layer ${p}`);
    if (l.diffId !== diffIds[i]) {
      throw UserError.runtime(
        'digest-mismatch',
        `verification failed for layer ${i + 1} of ${opts.image}: its content hashes to ${l.diffId}, the config expects ${diffIds[i]}`,
        'the daemon exported corrupted content; nothing was archived',
      );
    }
    return l;
  });
  return { config: { digest: configDigest, size: configBytes.length, bytes: configBytes }, layers: out, format: sawOciLayout ? 'oci-layout' : 'docker-archive' };
}

/** One pass over the stream: links noted, Docker's metadata skipped, JSON kept, everything else stored as a layer. */
async function readEntries(stream: AsyncIterable<Buffer | string>, opts: SaveOptions): Promise<SaveEntries> {
  const json = new Map<string, Buffer>();
  const layers = new Map<string, StoredLayer>();
  const links = new Map<string, string>();
  let sawOciLayout = false;
  try {
    for await (const e of readTar(stream)) {
      if (opts.signal?.aborted) throw abortReason(opts.signal);
      const path = posix.normalize(e.path);
      if (e.type === 'symlink') {
        links.set(path, posix.normalize(posix.join(posix.dirname(path), e.linkpath)));
        continue;
      }
      if (e.type === 'hardlink') {
        links.set(path, posix.normalize(e.linkpath.replace(/^\.\//, '')));
        continue;
      }
      if (e.type !== 'file') continue;
      const base = posix.basename(path);
      if (path === 'oci-layout') sawOciLayout = true;
      // Metadata Docker writes that the image does not need.
      if (path === 'repositories' || path === 'oci-layout' || base === 'VERSION' || (base === 'json' && !path.startsWith('blobs/'))) continue;
      if (e.size <= SMALL) {
        const chunks: Buffer[] = [];
        for await (const c of e.body) chunks.push(c);
        const buf = Buffer.concat(chunks);
        if (looksLikeJson(buf)) {
          json.set(path, buf);
          continue;
        }
        layers.set(path, await opts.store.store(oneChunk(buf), { image: opts.image, signal: opts.signal, onBytes: opts.onBytes }));
        continue;
      }
      layers.set(path, await opts.store.store(e.body, { image: opts.image, signal: opts.signal, onBytes: opts.onBytes }));
    }
  } catch (e) {
    if (e instanceof TarFormatError) throw UserError.runtime('docker', `the Docker daemon's export of ${opts.image} is not a readable tar: ${e.message}`, 'check the daemon (docker save) and try again', e);
    throw e;
  }
  return { json, layers, links, sawOciLayout };
}

/** The one entry of the export's manifest.json. */
function saveManifestEntry(json: Map<string, Buffer>, image: string): { Config: string; Layers: string[] } {
  const manifestBuf = json.get('manifest.json');
  if (!manifestBuf) {
    throw UserError.runtime('unsupported', `the Docker daemon's export of ${image} has no manifest.json`, 'the daemon writes an unsupported `docker save` format; use --engine registry');
  }
  let entries: { Config?: string; Layers?: string[] }[];
  try {
    entries = JSON.parse(manifestBuf.toString('utf8')) as typeof entries;
  } catch {
    throw UserError.runtime('docker', `the Docker daemon's export of ${image} has an unreadable manifest.json`);
  }
  if (!Array.isArray(entries) || entries.length !== 1 || typeof entries[0]?.Config !== 'string' || !Array.isArray(entries[0].Layers)) {
    throw UserError.runtime('docker', `the Docker daemon's export of ${image} lists ${Array.isArray(entries) ? entries.length : 'no'} images in manifest.json; expected exactly one`);
  }
  return entries[0] as { Config: string; Layers: string[] };
}

/** The config's rootfs.diff_ids, one per layer of the entry. */
function configDiffIds(configBytes: Buffer, entry: { Layers: string[] }, image: string): string[] {
  let cfg: { rootfs?: { diff_ids?: unknown } };
  try {
    cfg = JSON.parse(configBytes.toString('utf8')) as typeof cfg;
  } catch {
    throw UserError.runtime('docker', `the image config of ${image} is not valid JSON`);
  }
  const diffIds = Array.isArray(cfg.rootfs?.diff_ids) ? (cfg.rootfs.diff_ids as unknown[]).map(String) : [];
  if (diffIds.length !== entry.Layers.length) {
    throw UserError.runtime('docker', `${image}: the config lists ${diffIds.length} layers but the export has ${entry.Layers.length}`);
  }
  return diffIds;
}

function looksLikeJson(b: Buffer): boolean {
  let i = 0;
  while (i < b.length && (b[i] === 0x20 || b[i] === 0x0a || b[i] === 0x0d || b[i] === 0x09)) i++;
  if (b[i] !== 0x7b && b[i] !== 0x5b) return false;
  try {
    JSON.parse(b.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

async function* oneChunk(b: Buffer): AsyncGenerator<Buffer> {
  if (b.length) yield b;
}
