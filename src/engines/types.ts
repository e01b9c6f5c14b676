import type { Platform } from '../platform.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { Digest } from '../oci/digest.js';
import type { Platform as ImagePlatform } from '../oci/platform.js';
import type { ProgressSink } from '../progress/sink.js';
import type { OciArchiveImage } from '../archive/oci-archive.js';

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
  /** false: an intermediate archive (the build copies it into a tarball that is fsynced): no fsync of its own. Default true. */
  durable?: boolean;
}

export interface ArchivedImage {
  /** Canonical reference as requested. */
  ref: string;
  /** Digest of the platform-specific image manifest stored in the archive. */
  manifestDigest: Digest;
  /** Config digest = the image ID Docker and containerd show. */
  configDigest: Digest;
  /** The platform taken (a lower arm variant than the bundle's is possible, see src/oci/platform.ts). */
  platform: ImagePlatform;
  /** Sum of config + layer sizes (compressed, as stored). */
  size: number;
  layers: Descriptor[];
  /** Which engine fetched it: `docker` images come from a daemon (re-packed by `docker save`). */
  engine: 'registry' | 'docker';
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

/** What `collect` needs: an archive request without the archive. */
export type ImageCollectRequest = Omit<ImageArchiveRequest, 'outFile' | 'mtime'>;

/** One image an engine collected: what the archive writer stores, and what the result reports. */
export interface CollectedImage {
  archive: OciArchiveImage;
  info: ArchivedImage;
}

/**
 * Images one engine resolved for a platform, their blobs in the shared cache (`<cacheDir>/blobs/sha256/`)
 * or still arriving. Several engines' collections go into one archive (src/engines/write.ts), so a
 * manifest can name the engine per image.
 */
export interface CollectedImages {
  /** In request order, each canonical reference once. */
  images: CollectedImage[];
  /** Resolves when the blob is complete and verified in the cache (at once for a blob that is there). */
  blobReady(digest: string): Promise<void>;
  /** Resolves when every blob is in (and progress reported); rejects with the engine's failure. */
  done: Promise<void>;
  /** Stops whatever still runs, waits until it has stopped (no temp files left), returns its failures. */
  stop(): Promise<unknown[]>;
  /**
   * Optional: fetches a blob of these images again into the cache (after the archive writer found the
   * cached copy corrupt and evicted it). Resolves false when the blob is not one of this engine's, or
   * the engine cannot fetch it again (then the build fails naming the entry).
   */
  refetch?(digest: string): Promise<boolean>;
  /** Optional: true for a blob this engine verified in this run (fetched and hashed, or hashed as read), which needs no second hash. */
  verifiedNow?(digest: string): boolean;
}

export interface ImageEngine {
  readonly name: 'registry' | 'docker';
  archive(req: ImageArchiveRequest): Promise<ImageArchiveResult>;
  /** Resolves the images and puts their blobs in the cache, without writing an archive. */
  collect(req: ImageCollectRequest): Promise<CollectedImages>;
  /** Releases connections, temp state. Safe to call twice. */
  close(): Promise<void>;
}
