import type { Platform } from '../platform.js';
import type { ProgressSink } from '../progress/sink.js';

/**
 * The one small interface every image engine (registry, docker) implements. An engine resolves each
 * image for exactly one platform, verifies every blob against its digest, and writes ONE images archive
 * (OCI image layout + Docker manifest.json, see src/archive/oci-archive.ts) holding each blob once.
 */
export interface ImageArchiveRequest {
  /** Canonical references, e.g. `docker.io/kubeedge/cloudcore:v1.22.0` (see manifest/image-ref.ts). */
  images: string[];
  platform: Platform;
  /** Final archive path. Engines write to a temp name beside it and rename only when complete. */
  outFile: string;
  /** Root of the content-addressed cache shared by builds (blobs under `<cacheDir>/blobs/sha256/`). */
  cacheDir: string;
  /** Parallel blob downloads. */
  concurrency?: number;
  /** Seconds since epoch used as the mtime of every archive entry (reproducible output). */
  mtime: number;
  progress?: ProgressSink;
  signal?: AbortSignal;
  /**
   * Per-image pull policy, keyed by the reference as listed in `images` (or its canonical form).
   * `never`: the image must already be in the Docker daemon (docker engine only; the registry engine
   * ignores it). Default `always`.
   */
  pullPolicy?: Record<string, 'always' | 'never'>;
}

export interface ArchivedImage {
  /** Canonical reference as requested. */
  ref: string;
  /** Digest of the platform-specific image manifest stored in the archive. */
  manifestDigest: string;
  /** Config digest = the image ID Docker and containerd show. */
  configDigest: string;
  platform: { os: string; architecture: string; variant?: string };
  /** Sum of config + layer sizes (compressed, as stored). */
  size: number;
  layers: { digest: string; size: number; mediaType: string }[];
}

export interface ImageArchiveResult {
  file: string;
  /** SHA-256 of the archive file, hex. */
  sha256: string;
  /** Archive size in bytes. */
  size: number;
  images: ArchivedImage[];
  /** Bytes of distinct blobs written (each once). */
  uniqueBlobBytes: number;
  /** Bytes the same images would take if every image carried its own copy of every blob. */
  totalBlobBytes: number;
}

export interface ImageEngine {
  readonly name: 'registry' | 'docker';
  archive(req: ImageArchiveRequest): Promise<ImageArchiveResult>;
  /** Releases connections, temp state. Safe to call twice. */
  close(): Promise<void>;
}
