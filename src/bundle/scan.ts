import { createHash, type Hash } from 'node:crypto';
import { LayerIndexer, type LayerIndex } from '../engines/layer-index.js';
import { digestOfBlobPath } from '../oci/digest.js';
import { readTarball, TarStreamParser, type TarEntryHeader, type TarEntrySink, type TarCompression, type TarReadState } from './read.js';

/**
 * One pass over a bundle tarball, as a stream: every entry is hashed as it streams by, the small files a
 * check needs (SHA256SUMS, bundle.json, sbom.cdx.json) are kept in memory, and every `images/*.tar` is
 * read as a nested tar stream whose blobs are hashed the same way (its JSON documents — index.json,
 * manifest.json, image manifests and configs — are small and kept). Nothing is written to disk.
 */
export interface ScannedFile {
  /** Path relative to the bundle's top directory. */
  path: string;
  type: TarEntryHeader['type'];
  size: number;
  mode: number;
  /** SHA-256 hex of the content; undefined when the entry was cut short (truncated archive). */
  sha256: string | undefined;
  /** All its bytes were read (false when a truncated archive cut it short). */
  complete: boolean;
  /** The first bytes (to recognise ELF binaries and their machine). */
  head: Buffer;
}

export interface ScannedBlob {
  digest: string;
  size: number;
  /** Hash of the bytes in the archive, `sha256:<hex>`; undefined when cut short. */
  actual: string | undefined;
  /** Content, kept only for small blobs that look like JSON (manifests, configs). */
  json: Buffer | undefined;
  /** For a blob that is a layer (gzip or tar): the index of its entries (see engines/entrypoint.ts). */
  layer?: LayerIndex;
}

export interface ScannedImagesArchive {
  path: string;
  read: TarReadState;
  blobs: Map<string, ScannedBlob>;
  /** Small top-level files of the layout: index.json, manifest.json, oci-layout. */
  docs: Map<string, Buffer>;
  /** Entries that are neither blobs nor the layout's documents nor directories. */
  other: string[];
}

export interface BundleScan {
  file: string;
  compression: TarCompression;
  fileSize: number;
  read: TarReadState;
  /** Top-level directories (a bundle has exactly one). */
  topDirs: string[];
  /** Entries outside the single top directory, or of a kind a bundle never holds. */
  strays: string[];
  files: Map<string, ScannedFile>;
  /** Content of the small files kept (relative path → bytes). */
  kept: Map<string, Buffer>;
  images: Map<string, ScannedImagesArchive>;
}

const KEEP_FILES = new Set(['SHA256SUMS', 'bundle.json', 'sbom.cdx.json']);
/** Also kept: what the image completeness check reads (install.sh, the rendered manifests; see needs.ts). */
const KEEP_FOR_NEEDS = (rel: string) => rel === 'install.sh' || /^manifests\/.+\.ya?ml$/.test(rel);
const KEEP_LIMIT = 32 << 20;
const JSON_BLOB_LIMIT = 4 << 20;
const IMAGES_ARCHIVE = /^images\/[^/]+\.tar$/;
const LAYOUT_DOCS = new Set(['index.json', 'manifest.json', 'oci-layout', 'repositories']);
const HEAD_BYTES = 64;

export interface ScanOptions {
  /** Hash the content (default true). inspect may skip it. */
  hash?: boolean;
  /** Index the image layers as they stream by, for the entrypoint check (default: as `hash`). */
  layers?: boolean;
}

export async function scanBundle(file: string, opts: ScanOptions = {}): Promise<BundleScan> {
  const hashing = opts.hash !== false;
  const indexing = opts.layers ?? hashing;
  const pending: Promise<void>[] = [];
  const files = new Map<string, ScannedFile>();
  const kept = new Map<string, Buffer>();
  const images = new Map<string, ScannedImagesArchive>();
  const topDirs = new Set<string>();
  const strays: string[] = [];

  const onEntry = (h: TarEntryHeader): TarEntrySink | undefined => {
    const rel = placeEntry(h, topDirs, strays);
    if (rel === undefined) return undefined;
    const rec: ScannedFile = { path: rel, type: h.type, size: h.size, mode: h.mode, sha256: undefined, complete: false, head: Buffer.alloc(0) };
    files.set(rel, rec);
    let nested: NestedImages | undefined;
    if (IMAGES_ARCHIVE.test(rel)) {
      nested = new NestedImages(rel, hashing, indexing ? pending : undefined);
      images.set(rel, nested.result);
    }
    return fileSink(h, rec, hashing, nested, kept);
  };

  const r = await readTarball(file, onEntry);
  await Promise.all(pending);
  return {
    file,
    compression: r.compression,
    fileSize: r.fileSize,
    read: { complete: r.complete, ...(r.problem ? { problem: r.problem } : {}), entries: r.entries, bytes: r.bytes },
    topDirs: [...topDirs].sort(),
    strays,
    files,
    kept,
    images,
  };
}

/**
 * Where an entry sits: its path under the top directory, recording the top directories and the strays
 * (absolute names, links, anything but files and directories under the top directory); undefined when
 * the entry is no file to scan.
 */
function placeEntry(h: TarEntryHeader, topDirs: Set<string>, strays: string[]): string | undefined {
  const clean = h.path.replace(/^\.\//, '');
  const slash = clean.indexOf('/');
  const top = slash === -1 ? clean : clean.slice(0, slash);
  const rel = slash === -1 ? '' : clean.slice(slash + 1).replace(/\/$/, '');
  if (top) topDirs.add(top);
  else if (clean.startsWith('/')) strays.push(`${clean} (absolute name)`);
  if (h.type === 'directory') {
    if (slash === -1 && !clean.endsWith('/')) strays.push(clean);
    return undefined;
  }
  if (rel === '' || h.type === 'symlink' || h.type === 'hardlink' || h.type === 'other') {
    strays.push(`${clean}${h.type === 'file' ? '' : ` (${h.type}${h.linkname ? ` → ${h.linkname}` : ''})`}`);
    if (h.type !== 'file') return undefined;
  }
  if (rel === '') return undefined;
  return rel;
}

/** One file's data as it streams by: hashed, its head kept, small files the checks read kept whole, an images archive fed to its nested reader. */
function fileSink(h: TarEntryHeader, rec: ScannedFile, hashing: boolean, nested: NestedImages | undefined, kept: Map<string, Buffer>): TarEntrySink {
  const rel = rec.path;
  const hash: Hash | undefined = hashing ? createHash('sha256') : undefined;
  const keep: Buffer[] | undefined = (KEEP_FILES.has(rel) || KEEP_FOR_NEEDS(rel)) && h.size <= KEEP_LIMIT ? [] : undefined;
  const heads: Buffer[] = [];
  let headLen = 0;
  let got = 0;
  return {
    data(chunk) {
      got += chunk.length;
      hash?.update(chunk);
      keep?.push(Buffer.from(chunk));
      if (headLen < HEAD_BYTES) {
        const part = Buffer.from(chunk.subarray(0, HEAD_BYTES - headLen));
        heads.push(part);
        headLen += part.length;
      }
      nested?.write(chunk);
    },
    end() {
      rec.head = Buffer.concat(heads);
      nested?.end();
      if (got !== h.size) return; // cut short: no hash
      rec.complete = true;
      if (hash) rec.sha256 = hash.digest('hex');
      if (keep) kept.set(rel, Buffer.concat(keep));
    },
  };
}

/** Reads the images archive nested in the bundle as it streams by. */
class NestedImages {
  readonly result: ScannedImagesArchive;
  private readonly parser: TarStreamParser;
  constructor(path: string, hashing: boolean, layerIndexes?: Promise<void>[]) {
    const blobs = new Map<string, ScannedBlob>();
    const docs = new Map<string, Buffer>();
    const other: string[] = [];
    this.result = { path, read: { complete: false, entries: 0, bytes: 0 }, blobs, docs, other };
    this.parser = new TarStreamParser((h) => {
      const p = h.path.replace(/^\.\//, '').replace(/\/$/, '');
      if (h.type === 'directory') return undefined;
      const digest = digestOfBlobPath(p);
      if (digest && h.type === 'file') {
        const blob: ScannedBlob = { digest, size: h.size, actual: undefined, json: undefined };
        blobs.set(digest, blob);
        const hash = hashing ? createHash('sha256') : undefined;
        const maybeJson = h.size <= JSON_BLOB_LIMIT;
        let parts: Buffer[] | undefined = maybeJson ? [] : undefined;
        let got = 0;
        let layer: LayerIndexer | undefined;
        return {
          data(chunk) {
            if (got === 0 && parts && chunk.length > 0 && !looksLikeJsonStart(chunk)) parts = undefined;
            if (got === 0 && layerIndexes && looksLikeLayer(chunk)) layer = new LayerIndexer();
            got += chunk.length;
            hash?.update(chunk);
            parts?.push(Buffer.from(chunk));
            layer?.write(Buffer.from(chunk)); // the parser may keep a reference; chunks can be reused
          },
          end() {
            if (layer) {
              const ix = layer;
              layerIndexes!.push(
                ix.end().then((l) => {
                  blob.layer = l;
                }),
              );
            }
            if (got !== h.size) return;
            if (hash) blob.actual = `sha256:${hash.digest('hex')}`;
            if (parts) blob.json = Buffer.concat(parts);
          },
        };
      }
      if (LAYOUT_DOCS.has(p) && h.type === 'file' && h.size <= KEEP_LIMIT) {
        const parts: Buffer[] = [];
        return {
          data: (c) => parts.push(Buffer.from(c)),
          end: () => {
            docs.set(p, Buffer.concat(parts));
          },
        };
      }
      other.push(p);
      return undefined;
    });
  }
  write(chunk: Buffer): void {
    this.parser.write(chunk);
  }
  end(): void {
    this.result.read = this.parser.end();
  }
}

/** gzip (1f 8b), zstd (28 b5 2f fd, indexed as unreadable) or a plain tar (ustar magic at 257). */
function looksLikeLayer(b: Buffer): boolean {
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return true;
  if (b.length >= 4 && b.readUInt32LE(0) === 0xfd2fb528) return true;
  return b.length >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar';
}

function looksLikeJsonStart(b: Buffer): boolean {
  for (const x of b) {
    if (x === 0x20 || x === 0x0a || x === 0x0d || x === 0x09) continue;
    return x === 0x7b; // '{'
  }
  return true;
}
