import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ListrTask } from 'listr2';
import { UserError } from '../errors.js';
import { loadManifest } from '../manifest/load.js';
import { makePlan, type BuildPlan, type BundlePlan, type Compression } from '../plan/plan.js';
import type { Platform } from '../platform.js';
import type { Side } from '../manifest/schema.js';
import { fetchBinary, refetchBinary, type FetchedBinary } from '../binaries/fetch.js';
import { createEngine, type EngineName } from '../engines/index.js';
import type { ImageArchiveResult, ImageEngine } from '../engines/types.js';
import { archiveWithEngines } from '../engines/write.js';
import { renderSide } from '../render/render.js';
import { buildRenderContext, IMAGES_ARCHIVE_PATH } from '../render/build-context.js';
import { makeInventory } from '../bundle/inventory.js';
import { memoryFile, sha256sums, stageBundleTarball, type BundleFile, type WriteBundleOptions, type WrittenBundle } from '../bundle/write.js';
import { runTasks, withProgress, type Progress, type RendererMode } from '../progress/ui.js';
import { buildResultEvent } from '../progress/results.js';
import { fetchTurns, releasingTurn, type FetchTurn } from './build-turns.js';
import { resolveCacheDir } from '../util/cache-dir.js';
import { TEMPLATES_ROOT } from '../version.js';
import { stageChecksumsFile } from '../bundle/checksums.js';
import { mkdirp, removeStaleTemps, type Staged } from '../util/fs.js';
import { ContentMismatchError } from '../util/hash.js';
import { makeSbom, SBOM_PATH } from '../bundle/sbom.js';
import { planNeeds } from '../plan/needs.js';
import { DISK_FILE, diskSteps, diskTsv, UNPACK_FACTOR } from '../bundle/disk.js';
import type { ImageNeed } from '../bundle/needs.js';

export interface BuildOptions {
  manifest: string;
  platforms: Platform[];
  only?: Side;
  outDir: string;
  cacheDir?: string;
  engine: EngineName;
  compression: Compression;
  binaryMirrors?: { from: string; to: string }[];
  registriesFile?: string;
  dockerConfigPath?: string;
  /** docker engine: keep what the build pulled in the daemon, under the engine's own tags. */
  keepImages?: boolean;
  templatesDir?: string;
  dryRun?: boolean;
  /** Also write a CycloneDX SBOM, sbom.cdx.json, inside each bundle (listed in SHA256SUMS). */
  sbom?: boolean;
  renderer: RendererMode;
  /** --json: progress events, then the result, one JSON line each (README "Progress"). */
  events?: (line: string) => void;
  signal?: AbortSignal;
  /** Parallel blob downloads per engine (registry engine default 4). */
  concurrency?: number;
}

export interface BuiltBundle {
  side: Side;
  arch: string;
  name: string;
  file: string;
  sha256: string;
  size: number;
  images: number;
  binaries: number;
  notes: string[];
}

export interface BuildResult {
  plan: BuildPlan;
  dryRun: boolean;
  bundles: BuiltBundle[];
  /** Path of the combined SHA256SUMS beside the tarballs (not written on --dry-run). */
  checksumsFile?: string;
}

export async function build(opts: BuildOptions): Promise<BuildResult> {
  return withProgress(opts.renderer, opts.events, (progress) => buildWith(opts, progress), buildResultEvent);
}

async function buildWith(opts: BuildOptions, progress: Progress): Promise<BuildResult> {
  const lm = await loadManifest(opts.manifest);
  const plan = makePlan(lm, {
    platforms: opts.platforms,
    ...(opts.only ? { only: opts.only } : {}),
    outDir: opts.outDir,
    compression: opts.compression,
    binaryMirrors: opts.binaryMirrors ?? [],
  });
  const registriesFile = opts.registriesFile ?? (lm.manifest.registries ? join(lm.baseDir, lm.manifest.registries) : undefined);
  checkImageSettings(plan, opts.engine, lm.displayPath);
  if (opts.keepImages && !enginesNeeded(plan, opts.engine).includes('docker')) {
    throw new UserError('--keep-images applies to the docker engine, and no image of this build goes through it', { code: 'usage', hint: 'add --engine docker, or drop --keep-images' });
  }
  const templatesRoot = opts.templatesDir ?? TEMPLATES_ROOT;
  // Every image the side's nodes will run must be in its bundle: refused here, before any fetch.
  const needs = await planNeeds(lm, plan, templatesRoot);
  if (opts.dryRun) return { plan, dryRun: true, bundles: [] };

  const cacheDir = resolveCacheDir(opts.cacheDir);
  await mkdirp(plan.outDir);
  // What a killed build left in the output directory (temp files, work directory of a dead PID).
  await removeStaleTemps(plan.outDir);
  const workRoot = join(plan.outDir, `.kubeprepare-work-${process.pid}`);
  const engines = new Map<EngineName, ImageEngine>();
  const built: BuiltBundle[] = [];
  // Every tarball, then SHA256SUMS, is staged as a complete temp file and renamed only when all are:
  // a build that fails or is killed leaves the previous output of the same names as it was.
  const staged: Staged<unknown>[] = [];
  let committed = false;
  try {
    for (const name of enginesNeeded(plan, opts.engine)) {
      engines.set(
        name,
        await createEngine(name, {
          ...(registriesFile ? { registriesFile } : {}),
          ...(opts.dockerConfigPath ? { dockerConfigPath: opts.dockerConfigPath } : {}),
          ...(opts.keepImages ? { keepImages: true } : {}),
        }),
      );
    }
    // Bundles run at once, but each one's fetching (binaries, images) waits for the previous bundle's
    // (turns): a blob two bundles share is fetched once and then found in the cache, and the writing of
    // one bundle's tarball overlaps the downloads of the next.
    // A failing bundle stops the others (their downloads abort), and cleanup waits until all have stopped.
    const failFast = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, failFast.signal]) : failFast.signal;
    const turns = fetchTurns(plan.bundles.length);
    const running: Promise<unknown>[] = [];
    const tasks: ListrTask[] = plan.bundles.map((bundle, index) => ({
      title: `${bundle.side} ${bundle.platformString} → ${bundle.name}`,
      task: (_ctx, parent) => {
        const ctx: BundleContext = { cacheDir, templatesRoot, workRoot, engines, defaultEngine: opts.engine, progress, signal, built, staged, sbom: Boolean(opts.sbom), needs: needs.get(bundle.name) ?? [], index, turn: turns[index]!, ...(opts.concurrency ? { concurrency: opts.concurrency } : {}) };
        const p = parent
          .newListr(bundleTasks(plan, bundle, ctx), { concurrent: false })
          .run()
          .catch((e: unknown) => {
            failFast.abort(e);
            throw e;
          })
          .finally(() => turns[index]!.release());
        running.push(p.catch(() => {}));
        return p;
      },
    }));
    try {
      await runTasks(tasks, progress.renderer, true);
    } finally {
      await Promise.all(running);
    }
    // In plan order, whichever bundle finished first (a sparse array while they ran).
    built.splice(0, built.length, ...built.filter(Boolean));
    staged.splice(0, staged.length, ...staged.filter(Boolean));
    const sums = await stageChecksumsFile(plan.outDir, built.map((b) => ({ file: b.file, sha256: b.sha256 })));
    staged.push(sums);
    // The renames: tarballs first, the SHA256SUMS that lists them last.
    for (const s of staged) await s.commit();
    committed = true;
    return { plan, dryRun: false, bundles: built, checksumsFile: sums.result };
  } finally {
    if (!committed) for (const s of staged) await s?.discard(); // sparse (by bundle) when a bundle failed
    for (const e of engines.values()) await e.close();
    await rm(workRoot, { recursive: true, force: true });
  }
}

/**
 * Per-image manifest settings are honoured or refused, never silently ignored: an image may name its
 * own engine (`engine: docker` for an image only the local daemon has), and `pull: never` (use the
 * daemon's local image) needs the docker engine for that image. (An image listed twice with different
 * settings is refused by the plan, where duplicates are merged.)
 */
export function checkImageSettings(plan: BuildPlan, engine: EngineName, manifestShown: string): void {
  const problems: string[] = [];
  for (const b of plan.bundles) {
    for (const i of b.images) {
      if (i.pull === 'never' && (i.engine ?? engine) !== 'docker') {
        problems.push(
          `${manifestShown}: components.${i.component}: image ${i.ref} has 'pull: never' (an image from the local Docker daemon), which needs the docker engine: add 'engine: docker' to it or build with --engine docker`,
        );
      }
    }
  }
  if (problems.length > 0) {
    throw new UserError([...new Set(problems)].join('\n'), { code: 'manifest', hint: 'fix the per-image engine/pull settings in the manifest' });
  }
}

/** The engine each bundle image goes through: its own `engine:` or the build's. */
export function enginesNeeded(plan: BuildPlan, engine: EngineName): EngineName[] {
  return [...new Set(plan.bundles.flatMap((b) => b.images.map((i) => i.engine ?? engine)))].sort();
}

interface BundleContext {
  cacheDir: string;
  templatesRoot: string;
  workRoot: string;
  engines: Map<EngineName, ImageEngine>;
  defaultEngine: EngineName;
  progress: Progress;
  signal: AbortSignal | undefined;
  built: BuiltBundle[];
  staged: Staged<unknown>[];
  sbom: boolean;
  /** The images this bundle's nodes need (recorded in bundle.json). */
  needs: ImageNeed[];
  /** Position in the plan: where its result goes in `built`/`staged`. */
  index: number;
  /** This bundle's turn to fetch (see fetchTurns). */
  turn: FetchTurn;
  concurrency?: number;
}

function bundleTasks(plan: BuildPlan, bundle: BundlePlan, c: BundleContext): ListrTask[] {
  const fetched: FetchedBinary[] = [];
  let images: ImageArchiveResult | undefined;
  let rendered: BundleFile[] = [];
  const imagesFile = join(c.workRoot, `${bundle.name}-images.tar`);
  return [
    {
      title: `binaries for ${bundle.name}`,
      task: async (_ctx, task) => {
        await c.turn.wait;
        c.signal?.throwIfAborted();
        const sink = c.progress.sink(task, 'binary', bundle.name);
        for (const b of bundle.binaries) {
          fetched.push(await fetchBinary(b, { cacheDir: c.cacheDir, progress: sink, ...(c.signal ? { signal: c.signal } : {}) }));
        }
        for (const n of bundle.notes) sink.note(bundle.name, n);
        task.title = `binaries for ${bundle.name}: ${fetched.length} (${fetched.filter((f) => f.cached).length} cached)`;
        if (bundle.images.length === 0) c.turn.release();
      },
    },
    {
      title: `images for ${bundle.name}`,
      skip: () => (bundle.images.length === 0 ? `no images listed for the ${bundle.side} side` : false),
      task: async (_ctx, task) => {
        try {
        const shares = [...c.engines].map(([name, engine]) => ({ engine, images: bundle.images.filter((i) => (i.engine ?? c.defaultEngine) === name).map((i) => i.ref) }));
        const pullPolicy = Object.fromEntries(bundle.images.filter((i) => i.pull).map((i) => [i.ref, i.pull as 'always' | 'never']));
        images = await archiveWithEngines(shares, {
          images: bundle.images.map((i) => i.ref),
          ...(Object.keys(pullPolicy).length > 0 ? { pullPolicy } : {}),
          platform: bundle.platform,
          outFile: imagesFile,
          // An intermediate file: copied into the bundle tarball, which is fsynced, then removed.
          durable: false,
          cacheDir: c.cacheDir,
          mtime: plan.mtime,
          progress: releasingTurn(c.progress.sink(task, 'image', bundle.name), c.turn),
          ...(c.signal ? { signal: c.signal } : {}),
          ...(c.concurrency ? { concurrency: c.concurrency } : {}),
        });
        } finally {
          c.turn.release();
        }
        task.title = `images for ${bundle.name}: ${images.images.length} images, ${(images.size / 1048576).toFixed(1)} MB`;
      },
    },
    {
      title: `templates for ${bundle.name}`,
      task: async () => {
        const ctx = buildRenderContext(plan, bundle);
        rendered = (await renderSide(c.templatesRoot, ctx)).map((t) => memoryFile(t.path, t.content, t.mode));
        if (!rendered.some((f) => f.path === 'install.sh')) {
          throw new UserError(`${c.templatesRoot}/${bundle.side}: no install.sh template`, { code: 'template', hint: 'every side needs scripts-templates/<side>/install.sh' });
        }
      },
    },
    {
      title: `write ${bundle.outFile}`,
      task: async (_ctx, task) => {
        const out = await stageRepairing(fetched, { cacheDir: c.cacheDir, ...(c.signal ? { signal: c.signal } : {}) }, () => bundleFiles());
        c.staged[c.index] = out;
        c.built[c.index] = {
          side: bundle.side,
          arch: bundle.arch,
          name: bundle.name,
          file: out.finalPath,
          sha256: out.result.sha256,
          size: out.result.size,
          images: images?.images.length ?? 0,
          binaries: fetched.length,
          notes: bundle.notes,
        };
        task.title = `wrote ${bundle.outFile} (${(out.result.size / 1048576).toFixed(1)} MB)`;
      },
    },
  ];

  /** The files of the bundle (read again after a cached binary was fetched anew). */
  function bundleFiles(): WriteBundleOptions {
    const files: BundleFile[] = [...rendered];
    for (const f of fetched) files.push({ path: f.binary.dest, mode: f.binary.mode, source: { file: f.file }, sha256: f.sha256, size: f.size });
    if (images) files.push({ path: IMAGES_ARCHIVE_PATH, mode: 0o644, source: { file: imagesFile }, sha256: images.sha256, size: images.size });
    // What each install step writes to the host, for install.sh's free-space preflight (disk.ts).
    const disk = diskSteps(bundle.side, fetched, images);
    files.push(memoryFile(DISK_FILE, diskTsv(disk)));
    const seen = new Set<string>();
    for (const f of files) {
      if (seen.has(f.path)) throw new UserError(`${bundle.name}: two sources write ${f.path}`, { code: 'manifest', hint: 'a template and a binary dest collide; rename one' });
      seen.add(f.path);
    }
    const inventory = makeInventory(plan, bundle, fetched, images, images ? IMAGES_ARCHIVE_PATH : null, files);
    inventory.needs = c.needs;
    inventory.disk = { file: DISK_FILE, unpackFactor: UNPACK_FACTOR, unpackedBundleBytes: files.reduce((n, f) => n + f.size, 0), steps: disk };
    files.push(memoryFile('bundle.json', `${JSON.stringify(inventory, null, 2)}\n`));
    if (c.sbom) files.push(memoryFile(SBOM_PATH, `${JSON.stringify(makeSbom(inventory), null, 2)}\n`));
    files.push(memoryFile('SHA256SUMS', sha256sums(files)));
    return { topDir: bundle.name, files, mtime: plan.mtime, compression: plan.compression, outFile: bundle.outFile };
  }
}

/**
 * Stages the bundle tarball; every file copied from disk is hashed as it is copied (stageBundleTarball).
 * A cached binary that does not match its digest is evicted and fetched again (`fetched` is updated and
 * the tarball written again, each binary at most once); any other mismatch, or a binary that cannot be
 * fetched again, fails the build naming the file and the fix. Nothing is staged then.
 */
async function stageRepairing(fetched: FetchedBinary[], opts: { cacheDir: string; signal?: AbortSignal }, files: () => WriteBundleOptions): Promise<Staged<WrittenBundle>> {
  const repaired = new Set<string>();
  for (;;) {
    try {
      return await stageBundleTarball(files());
    } catch (e) {
      if (!(e instanceof ContentMismatchError)) throw e;
      const i = fetched.findIndex((f) => f.file === e.file);
      const f = fetched[i];
      const what = `${e.file} does not match the digest recorded for it (expected sha256:${e.expected}, got sha256:${e.actual})`;
      if (!f) throw UserError.runtime('cache', `${what}; the bundle was not written`, 'something changed the file while the build ran; check the disk and build again');
      const name = `${f.binary.name}: the cached ${f.file === f.downloadPath ? 'download' : 'file extracted from'} ${f.binary.url}`;
      if (repaired.has(f.file)) throw UserError.runtime('cache', `${name}: ${what}, again after it was fetched anew`, `check the disk, then build again with an empty --cache-dir`);
      repaired.add(f.file);
      try {
        fetched[i] = await refetchBinary(f, opts);
      } catch (err) {
        throw UserError.runtime(
          'cache',
          `${name}: ${what}; it was removed from the cache, and fetching it again failed: ${(err as Error).message}`,
          `build again once ${f.binary.url} is reachable (or remove ${f.file} / run with an empty --cache-dir)`,
          err,
        );
      }
    }
  }
}
