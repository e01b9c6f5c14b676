import { join } from 'node:path';
import type { ListrTask } from 'listr2';
import { UserError } from '../errors.js';
import { loadManifest } from '../manifest/load.js';
import { makePlan, type BuildPlan, type Compression } from '../plan/plan.js';
import type { Platform } from '../platform.js';
import type { Side } from '../manifest/schema.js';
import { createEngine, type EngineName } from '../engines/index.js';
import type { ImageEngine } from '../engines/types.js';
import { runTasks, withProgress, type Progress, type RendererMode } from '../progress/ui.js';
import { buildResultEvent } from '../progress/results.js';
import { fetchTurns } from './build-turns.js';
import { bundleTasks, stopBundle, type BuiltBundle, type BundleState } from './build-bundle.js';
import { resolveCacheDir } from '../util/cache-dir.js';
import { TEMPLATES_ROOT } from '../version.js';
import { stageChecksumsFile } from '../bundle/checksums.js';
import { mkdirp, removeStaleTemps } from '../util/fs.js';
import type { ImageNeed } from '../bundle/needs.js';
import { planNeeds } from '../plan/needs.js';
import { RenderMemo } from '../render/render.js';

export type { BuiltBundle } from './build-bundle.js';

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
  const renders = new RenderMemo();
  const needs = await planNeeds(lm, plan, templatesRoot, renders);
  if (opts.dryRun) return { plan, dryRun: true, bundles: [] };

  await mkdirp(plan.outDir);
  // What a killed build left in the output directory (temp files, work directory of a dead PID).
  await removeStaleTemps(plan.outDir);
  const engines = new Map<EngineName, ImageEngine>();
  // Every tarball, then SHA256SUMS, is staged as a complete temp file and renamed only when all are:
  // a build that fails or is killed leaves the previous output of the same names as it was.
  const states: BundleState[] = plan.bundles.map(() => ({ running: [], fetched: [], rendered: [] }));
  let committed = false;
  try {
    for (const name of enginesNeeded(plan, opts.engine)) engines.set(name, await createEngine(name, engineOptions(opts, registriesFile)));
    await runBundles(plan, states, { opts, progress, engines, needs, templatesRoot, renders, cacheDir: resolveCacheDir(opts.cacheDir) });
    const built = states.map((s) => s.built!);
    const sums = await stageChecksumsFile(plan.outDir, built.map((b) => ({ file: b.file, sha256: b.sha256 })));
    // The renames: tarballs first, the SHA256SUMS that lists them last.
    for (const s of [...states.map((st) => st.staged!), sums]) await s.commit();
    committed = true;
    return { plan, dryRun: false, bundles: built, checksumsFile: sums.result };
  } finally {
    if (!committed) for (const s of states) await s.staged?.discard();
    for (const e of engines.values()) await e.close();
  }
}

function engineOptions(opts: BuildOptions, registriesFile: string | undefined) {
  return {
    ...(registriesFile ? { registriesFile } : {}),
    ...(opts.dockerConfigPath ? { dockerConfigPath: opts.dockerConfigPath } : {}),
    ...(opts.keepImages ? { keepImages: true } : {}),
  };
}

interface RunContext {
  opts: BuildOptions;
  progress: Progress;
  engines: Map<EngineName, ImageEngine>;
  needs: Map<string, ImageNeed[]>;
  templatesRoot: string;
  renders: RenderMemo;
  cacheDir: string;
}

/**
 * Bundles run at once, but each one's images wait for the previous bundle's images to be resolved
 * (turns): a blob two bundles share is already on its way (shared) or in the cache, the downloads are
 * queued bundle by bundle, and the writing of one bundle's tarball overlaps the downloads of the next. A failing bundle stops the
 * others (their downloads abort), and this returns only once all have stopped.
 */
async function runBundles(plan: BuildPlan, states: BundleState[], r: RunContext): Promise<void> {
  const failFast = new AbortController();
  const signal = r.opts.signal ? AbortSignal.any([r.opts.signal, failFast.signal]) : failFast.signal;
  const turns = fetchTurns(plan.bundles.length);
  const running: Promise<unknown>[] = [];
  const tasks: ListrTask[] = plan.bundles.map((bundle, index) => ({
    title: `${bundle.side} ${bundle.platformString} → ${bundle.name}`,
    task: (_ctx, parent) => {
      const c = { cacheDir: r.cacheDir, templatesRoot: r.templatesRoot, renders: r.renders, engines: r.engines, defaultEngine: r.opts.engine, progress: r.progress, signal, sbom: Boolean(r.opts.sbom), needs: r.needs.get(bundle.name) ?? [], turn: turns[index]!, ...(r.opts.concurrency ? { concurrency: r.opts.concurrency } : {}) };
      const p = parent
        .newListr(bundleTasks(plan, bundle, c, states[index]!), { concurrent: true })
        .run()
        .catch(async (e: unknown) => {
          failFast.abort(e);
          await stopBundle(states[index]!);
          throw e;
        })
        .finally(() => turns[index]!.release());
      running.push(p.catch(() => {}));
      return p;
    },
  }));
  try {
    await runTasks(tasks, r.progress.renderer, true);
  } finally {
    await Promise.all(running);
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

