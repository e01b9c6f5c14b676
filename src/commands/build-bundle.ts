import type { Writable } from 'node:stream';
import type { ListrTask } from 'listr2';
import { UserError } from '../errors.js';
import type { BuildPlan, BundlePlan } from '../plan/plan.js';
import { fetchBinary, refetchBinary, type FetchedBinary } from '../binaries/fetch.js';
import type { EngineName } from '../engines/index.js';
import type { CollectedImage, CollectedImages, ImageArchiveResult, ImageEngine } from '../engines/types.js';
import { archiveOrder, collectShares, layoutCollected, repairBlob, stopParts, streamCollected } from '../engines/write.js';
import type { OciLayout } from '../archive/oci-archive.js';
import { renderSide, type RenderMemo } from '../render/render.js';
import { buildRenderContext, IMAGES_ARCHIVE_PATH } from '../render/build-context.js';
import { makeInventory } from '../bundle/inventory.js';
import { memoryFile, sha256sums, stageBundleTarball, type BundleFile, type StreamedFile, type WriteBundleOptions, type WrittenBundle } from '../bundle/write.js';
import type { Progress } from '../progress/ui.js';
import type { ProgressSink } from '../progress/sink.js';
import { releasingTurn, type FetchTurn } from './build-turns.js';
import type { Staged } from '../util/fs.js';
import { ContentMismatchError } from '../util/hash.js';
import { makeSbom, SBOM_PATH } from '../bundle/sbom.js';
import { DISK_FILE, diskSteps, diskTsv, UNPACK_FACTOR } from '../bundle/disk.js';
import type { ImageNeed } from '../bundle/needs.js';

/**
 * One bundle of a build, as four tasks: its binaries, its images (collected: resolved, downloads under
 * way), its templates, and its tarball, into which the images archive is streamed as its blobs arrive
 * (no images archive file of its own: the bytes are written once). bundle.json, the SBOM and SHA256SUMS
 * come last in the tarball, once the images archive's digest is known.
 */
export interface BuiltBundle {
  side: BundlePlan['side'];
  arch: string;
  name: string;
  file: string;
  sha256: string;
  size: number;
  images: number;
  binaries: number;
  notes: string[];
}

export interface BundleContext {
  cacheDir: string;
  templatesRoot: string;
  /** This build's renders (the needs of every bundle were derived from the same ones). */
  renders?: RenderMemo;
  engines: Map<EngineName, ImageEngine>;
  defaultEngine: EngineName;
  progress: Progress;
  signal: AbortSignal | undefined;
  sbom: boolean;
  /** The images this bundle's nodes need (recorded in bundle.json). */
  needs: ImageNeed[];
  /** This bundle's turn to fetch (see fetchTurns). */
  turn: FetchTurn;
  concurrency?: number;
}

/** What a bundle's tasks hand each other; `staged`/`built` once its tarball is complete. */
export interface BundleState {
  /** The bundle's steps that have started (settled, never rejecting): a failed bundle waits for them. */
  running: Promise<void>[];
  fetched: FetchedBinary[];
  rendered: BundleFile[];
  images?: CollectedArchive;
  staged?: Staged<WrittenBundle>;
  built?: BuiltBundle;
}

/** The bundle's images: the engines' collections and the archive they make (`result`: all but its digest, known once written). */
interface CollectedArchive {
  parts: CollectedImages[];
  /** The bundle's image progress (the entrypoint check's notes go there too). */
  progress: ProgressSink;
  images: CollectedImage[];
  layout: OciLayout;
  result: Omit<ImageArchiveResult, 'sha256'>;
}

/**
 * The bundle's four tasks, run at once (`concurrent: true`): images and binaries download side by side
 * (the images in the bundle's turn, see fetchTurns), the templates render meanwhile, and the tarball is
 * written once the other three are done (it waits for them: a failure of one is its failure too). The
 * images start first: they are the longest, and the binaries' first request loads node's fetch (undici),
 * which held the main thread ~25-40 ms before the first manifest request went out.
 */
export function bundleTasks(plan: BuildPlan, bundle: BundlePlan, c: BundleContext, state: BundleState): ListrTask[] {
  const binaries = settled(state);
  const images = settled(state);
  const templates = settled(state);
  return [
    {
      title: `images for ${bundle.name}`,
      task: (_ctx, task) =>
        images.run(async () => {
          try {
            if (bundle.images.length === 0) return task.skip(`no images listed for the ${bundle.side} side`);
            await c.turn.wait;
            c.signal?.throwIfAborted();
            state.images = await collectBundleImages(bundle, c, releasingTurn(c.progress.sink(task, 'image', bundle.name), c.turn));
          } finally {
            c.turn.release();
          }
          task.title = `images for ${bundle.name}: ${state.images.images.length} images, ${(state.images.layout.size / 1048576).toFixed(1)} MB`;
        }),
    },
    {
      title: `binaries for ${bundle.name}`,
      task: (_ctx, task) =>
        binaries.run(async () => {
          const sink = c.progress.sink(task, 'binary', bundle.name);
          for (const b of bundle.binaries) {
            c.signal?.throwIfAborted();
            state.fetched.push(await fetchBinary(b, { cacheDir: c.cacheDir, progress: sink, ...(c.signal ? { signal: c.signal } : {}) }));
          }
          for (const n of bundle.notes) sink.note(bundle.name, n);
          task.title = `binaries for ${bundle.name}: ${state.fetched.length} (${state.fetched.filter((f) => f.cached).length} cached)`;
        }),
    },
    {
      title: `templates for ${bundle.name}`,
      task: () =>
        templates.run(async () => {
          const ctx = buildRenderContext(plan, bundle);
          state.rendered = (await renderSide(c.templatesRoot, ctx, c.renders)).map((t) => memoryFile(t.path, t.content, t.mode));
          if (!state.rendered.some((f) => f.path === 'install.sh')) {
            throw new UserError(`${c.templatesRoot}/${bundle.side}: no install.sh template`, { code: 'template', hint: 'every side needs scripts-templates/<side>/install.sh' });
          }
        }),
    },
    {
      title: `write ${bundle.outFile}`,
      task: async (_ctx, task) => {
        await Promise.all([binaries.done, images.done, templates.done]);
        const built = await writeBundle(plan, bundle, c, state);
        task.title = `wrote ${bundle.outFile} (${(built.size / 1048576).toFixed(1)} MB)`;
      },
    },
  ];
}

/** The bundle's tarball, staged (renamed with the build's other outputs), once its inputs are ready. */
async function writeBundle(plan: BuildPlan, bundle: BundlePlan, c: BundleContext, state: BundleState): Promise<BuiltBundle> {
  const out = await stageRepairing(state, c, plan.mtime, (imagesInto) => bundleFiles(plan, bundle, c, state, imagesInto));
  state.staged = out;
  state.built = {
    side: bundle.side,
    arch: bundle.arch,
    name: bundle.name,
    file: out.finalPath,
    sha256: out.result.sha256,
    size: out.result.size,
    images: state.images?.images.length ?? 0,
    binaries: state.fetched.length,
    notes: bundle.notes,
  };
  return state.built;
}

/** A step another task waits for: `run` runs it once (listed in `state.running`), `done` settles as it did. */
function settled(state: BundleState): { run(fn: () => Promise<void>): Promise<void>; done: Promise<void> } {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  done.catch(() => {}); // the task that ran it reports the failure
  return {
    done,
    run: (fn) => {
      const p = fn().then(resolve, (e: unknown) => {
        reject(e);
        throw e;
      });
      state.running.push(p.catch(() => {}));
      return p;
    },
  };
}

/** A bundle that failed: its steps are waited for, its engines' work still running stopped (no temp files left). */
export async function stopBundle(state: BundleState): Promise<void> {
  await Promise.all(state.running);
  if (state.images) await Promise.all(state.images.parts.map((p) => p.stop()));
}

/** Each engine collects its share of the bundle's images; the archive's layout (and size) follows. */
async function collectBundleImages(bundle: BundlePlan, c: BundleContext, progress: ProgressSink): Promise<CollectedArchive> {
  const refs = bundle.images.map((i) => i.ref);
  const shares = [...c.engines].map(([name, engine]) => ({ engine, images: bundle.images.filter((i) => (i.engine ?? c.defaultEngine) === name).map((i) => i.ref) }));
  const pullPolicy = Object.fromEntries(bundle.images.filter((i) => i.pull).map((i) => [i.ref, i.pull as 'always' | 'never']));
  const parts = await collectShares(shares, {
    images: refs,
    ...(Object.keys(pullPolicy).length > 0 ? { pullPolicy } : {}),
    platform: bundle.platform,
    cacheDir: c.cacheDir,
    progress,
    ...(c.signal ? { signal: c.signal } : {}),
    ...(c.concurrency ? { concurrency: c.concurrency } : {}),
  });
  try {
    const { images, layout } = layoutCollected(parts, archiveOrder(refs), `${bundle.name}/${IMAGES_ARCHIVE_PATH}`);
    const { uniqueBlobBytes, totalBlobBytes } = layout.set;
    const result = { file: IMAGES_ARCHIVE_PATH, size: layout.size, images: images.map((i) => i.info), uniqueBlobBytes, totalBlobBytes };
    return { parts, progress, images, layout, result };
  } catch (e) {
    return stopParts(parts, e, c.signal);
  }
}

/** The files of the bundle (made again for each attempt: a cached binary fetched anew changes them). */
function bundleFiles(plan: BuildPlan, bundle: BundlePlan, c: BundleContext, state: BundleState, imagesInto: StreamedFile['write']): WriteBundleOptions {
  const { fetched } = state;
  const images = state.images?.result;
  const files: BundleFile[] = [...state.rendered];
  for (const f of fetched) files.push({ path: f.binary.dest, mode: f.binary.mode, source: { file: f.file }, sha256: f.sha256, size: f.size });
  // What each install step writes to the host, for install.sh's free-space preflight (disk.ts).
  const disk = diskSteps(bundle.side, fetched, images);
  files.push(memoryFile(DISK_FILE, diskTsv(disk)));
  const streamed = images ? [{ path: IMAGES_ARCHIVE_PATH, mode: 0o644, size: images.size, write: imagesInto }] : [];
  const seen = new Set<string>();
  for (const f of [...files, ...streamed]) {
    if (seen.has(f.path)) throw new UserError(`${bundle.name}: two sources write ${f.path}`, { code: 'manifest', hint: 'a template and a binary dest collide; rename one' });
    seen.add(f.path);
  }
  // Made once everything above is written: the images archive's digest is known then (the streamed entry's).
  const trailer = (written: BundleFile[]): BundleFile[] => {
    const archive = images && { ...images, sha256: written.find((f) => f.path === IMAGES_ARCHIVE_PATH)!.sha256 };
    const inventory = makeInventory(plan, bundle, fetched, archive, archive ? IMAGES_ARCHIVE_PATH : null, written);
    inventory.needs = c.needs;
    inventory.disk = { file: DISK_FILE, unpackFactor: UNPACK_FACTOR, unpackedBundleBytes: written.reduce((n, f) => n + f.size, 0), steps: disk };
    const described = [...written, memoryFile('bundle.json', `${JSON.stringify(inventory, null, 2)}\n`)];
    if (c.sbom) described.push(memoryFile(SBOM_PATH, `${JSON.stringify(makeSbom(inventory), null, 2)}\n`));
    return [...described.slice(written.length), memoryFile('SHA256SUMS', sha256sums(described))];
  };
  return { topDir: bundle.name, files, streamed, trailer, mtime: plan.mtime, compression: plan.compression, outFile: bundle.outFile };
}

/**
 * Stages the bundle tarball; every file copied from disk is hashed as it is copied (stageBundleTarball),
 * the images archive streamed into it from the collections (streamCollected). A cached binary or image
 * blob that does not match its digest is evicted and fetched again, and the tarball written again (each
 * at most once); any other mismatch, or one that cannot be fetched again, fails the build naming the
 * file and the fix. Nothing is staged then, and the engines' remaining work is stopped.
 */
async function stageRepairing(state: BundleState, c: BundleContext, mtime: number, files: (imagesInto: StreamedFile['write']) => WriteBundleOptions): Promise<Staged<WrittenBundle>> {
  const col = state.images;
  const imagesInto = async (out: Writable, hash: boolean): Promise<string | undefined> => {
    const written = await streamCollected(col!.parts, col!.images, col!.layout, out, { mtime, cacheDir: c.cacheDir, signal: c.signal, progress: col!.progress, hash });
    return hash ? written.sha256 : undefined;
  };
  const repaired = new Set<string>();
  const repairedBlobs = new Set<string>();
  /** Binaries taken again once because their file was gone (a second time, the error stands). */
  const retaken = new Set<string>();
  try {
    for (;;) {
      try {
        return await stageBundleTarball(files(imagesInto));
      } catch (e) {
        const gone = goneBinary(state.fetched, e);
        if (gone >= 0 && !retaken.has(state.fetched[gone]!.file)) {
          retaken.add(state.fetched[gone]!.file);
          // Another bundle of this build found it corrupt and is fetching it again: take its copy.
          state.fetched[gone] = await fetchBinary(state.fetched[gone]!.binary, { cacheDir: c.cacheDir, ...(c.signal ? { signal: c.signal } : {}) });
          continue;
        }
        if (!(e instanceof ContentMismatchError)) throw e;
        const i = state.fetched.findIndex((f) => f.file === e.file);
        if (i < 0 && col) await repairBlob(e, col.images, col.parts, repairedBlobs);
        else await repairBinary(state.fetched, i, e, repaired, c);
      }
    }
  } catch (e) {
    if (col) await stopParts(col.parts, e, c.signal);
    throw e;
  }
}

/** The index of the binary whose cached file was gone when the tarball was written (ENOENT), else -1. */
function goneBinary(fetched: FetchedBinary[], e: unknown): number {
  const err = e as NodeJS.ErrnoException;
  return err?.code === 'ENOENT' && typeof err.path === 'string' ? fetched.findIndex((f) => f.file === err.path) : -1;
}

/** The cached binary `fetched[i]` did not match its digest: fetched again (once), else a UserError naming it. */
async function repairBinary(fetched: FetchedBinary[], i: number, e: ContentMismatchError, repaired: Set<string>, c: BundleContext): Promise<void> {
  const f = fetched[i];
  const what = `${e.file} does not match the digest recorded for it (expected sha256:${e.expected}, got sha256:${e.actual})`;
  if (!f) throw UserError.runtime('cache', `${what}; the bundle was not written`, 'something changed the file while the build ran; check the disk and build again');
  const name = `${f.binary.name}: the cached ${f.file === f.downloadPath ? 'download' : 'file extracted from'} ${f.binary.url}`;
  if (repaired.has(f.file)) throw UserError.runtime('cache', `${name}: ${what}, again after it was fetched anew`, `check the disk, then build again with an empty --cache-dir`);
  repaired.add(f.file);
  try {
    fetched[i] = await refetchBinary(f, { cacheDir: c.cacheDir, ...(c.signal ? { signal: c.signal } : {}) });
  } catch (err) {
    throw UserError.runtime(
      'cache',
      `${name}: ${what}; it was removed from the cache, and fetching it again failed: ${(err as Error).message}`,
      `build again once ${f.binary.url} is reachable (or remove ${f.file} / run with an empty --cache-dir)`,
      err,
    );
  }
}
