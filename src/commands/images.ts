import { dirname, resolve, join } from 'node:path';
import { removeStaleTemps } from '../util/fs.js';
import { InternalError, UserError } from '../errors.js';
import { loadManifest } from '../manifest/load.js';
import { makePlan, resolveMtime } from '../plan/plan.js';
import { parseImageRefs } from '../manifest/image-ref.js';
import type { Platform } from '../platform.js';
import type { Side } from '../manifest/schema.js';
import { createEngine, type EngineName } from '../engines/index.js';
import type { ImageArchiveResult } from '../engines/types.js';
import { resolveCacheDir } from '../util/cache-dir.js';
import { runTasks, withProgress, type Progress, type RendererMode } from '../progress/ui.js';
import { imagesResultEvent } from '../progress/results.js';

export interface ImagesOptions {
  manifest: string;
  platform: Platform;
  outFile: string;
  /** References given on the command line; none = the manifest's images (of `only`, or both sides). */
  refs: string[];
  only?: Side;
  cacheDir?: string;
  engine: EngineName;
  registriesFile?: string;
  dockerConfigPath?: string;
  concurrency?: number;
  renderer: RendererMode;
  /** --json: progress events, then the result, one JSON line each (README "Progress"). */
  events?: (line: string) => void;
}

/** Only the images archive: for the manifest's images or the references given. */
export async function images(opts: ImagesOptions): Promise<ImageArchiveResult> {
  return withProgress(opts.renderer, opts.events, (progress) => archiveImages(opts, progress), imagesResultEvent);
}

async function archiveImages(opts: ImagesOptions, progress: Progress): Promise<ImageArchiveResult> {
  const lm = await loadManifest(opts.manifest);
  let refs: string[];
  if (opts.refs.length > 0) {
    refs = parseImageRefs(opts.refs).map((r) => r.ref.canonical);
  } else {
    const plan = makePlan(lm, { platforms: [opts.platform], ...(opts.only ? { only: opts.only } : {}), outDir: '.', compression: 'none' });
    refs = plan.bundles.flatMap((b) => b.images.map((i) => i.ref));
  }
  refs = [...new Set(refs)];
  if (refs.length === 0) throw new UserError('no images to archive', { code: 'usage', hint: 'list references after the options, or use a manifest with images' });
  const registriesFile = opts.registriesFile ?? (lm.manifest.registries ? join(lm.baseDir, lm.manifest.registries) : undefined);
  const engine = await createEngine(opts.engine, {
    ...(registriesFile ? { registriesFile } : {}),
    ...(opts.dockerConfigPath ? { dockerConfigPath: opts.dockerConfigPath } : {}),
  });
  // Temp files a killed run left beside the output (see removeStaleTemps).
  await removeStaleTemps(dirname(resolve(opts.outFile)));
  let result: ImageArchiveResult | undefined;
  try {
    await runTasks(
      [
        {
          title: `${refs.length} images for ${[opts.platform.os, opts.platform.architecture, opts.platform.variant].filter(Boolean).join('/')} → ${opts.outFile}`,
          task: async (_ctx, task) => {
            result = await engine.archive({
              images: refs,
              platform: opts.platform,
              outFile: resolve(opts.outFile),
              cacheDir: resolveCacheDir(opts.cacheDir),
              mtime: resolveMtime(lm).mtime,
              ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
              progress: progress.sink(task, 'image'),
            });
          },
        },
      ],
      progress.renderer,
    );
  } finally {
    await engine.close();
  }
  if (!result) throw new InternalError('images archive not written');
  return result;
}
