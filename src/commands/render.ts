import { mkdir, rm, writeFile, chmod, rename } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { loadManifest } from '../manifest/load.js';
import { makePlan } from '../plan/plan.js';
import type { Platform } from '../platform.js';
import type { Side } from '../manifest/schema.js';
import { renderSide } from '../render/render.js';
import { buildRenderContext } from '../render/build-context.js';
import { TEMPLATES_ROOT } from '../version.js';

export interface RenderOptions {
  manifest: string;
  platforms: Platform[];
  only?: Side;
  outDir: string;
  templatesDir?: string;
}

export interface RenderResult {
  /** One directory per bundle: `<out>/<bundle-name>/`. */
  dirs: { side: Side; arch: string; dir: string; files: string[] }[];
}

/** Renders the templates only (no downloads), one directory per bundle, for template development and review. */
export async function render(opts: RenderOptions): Promise<RenderResult> {
  const lm = await loadManifest(opts.manifest);
  const plan = makePlan(lm, { platforms: opts.platforms, only: opts.only, outDir: opts.outDir, compression: 'none' });
  const root = opts.templatesDir ? resolve(opts.templatesDir) : TEMPLATES_ROOT;
  const dirs: RenderResult['dirs'] = [];
  for (const bundle of plan.bundles) {
    const files = await renderSide(root, buildRenderContext(plan, bundle));
    const dir = join(plan.outDir, bundle.name);
    const tmp = `${dir}.${process.pid}.partial`;
    await rm(tmp, { recursive: true, force: true });
    for (const f of files) {
      const p = join(tmp, f.path);
      await mkdir(dirname(p), { recursive: true });
      await writeFile(p, f.content);
      await chmod(p, f.mode);
    }
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
    dirs.push({ side: bundle.side, arch: bundle.arch, dir, files: files.map((f) => f.path) });
  }
  return { dirs };
}
