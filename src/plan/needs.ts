import { UserError } from '../errors.js';
import type { LoadedManifest } from '../manifest/load.js';
import { ALL_SIDES, type Side } from '../manifest/schema.js';
import { renderSide, type RenderMemo } from '../render/render.js';
import { buildRenderContext } from '../render/build-context.js';
import { deriveNeeds, missingNeeds, unneededImages, type ImageNeed } from '../bundle/needs.js';
import { makePlan, type BuildPlan } from './plan.js';

/**
 * The images each planned bundle's nodes need (src/bundle/needs.ts), from both sides' templates rendered
 * for the bundle's platform — the edge's needs come partly from the cloud's files (EdgeMesh DaemonSet,
 * the chart's mosquitto), so both sides are rendered even for `--only edge`. Throws one UserError naming
 * every missing image and what needs it, before anything is fetched. Images nothing needs are noted.
 */
export async function planNeeds(lm: LoadedManifest, plan: BuildPlan, templatesRoot: string, memo?: RenderMemo): Promise<Map<string, ImageNeed[]>> {
  const byBundle = new Map<string, ImageNeed[]>();
  const problems: string[] = [];
  const byPlatform = new Map<string, ImageNeed[]>();
  for (const bundle of plan.bundles) {
    let needs = byPlatform.get(bundle.platformString);
    if (!needs) {
      const full = makePlan(lm, { platforms: [bundle.platform], outDir: plan.outDir, compression: plan.compression });
      const files: Record<Side, { path: string; content: string }[]> = { cloud: [], edge: [] };
      for (const side of ALL_SIDES) {
        const b = full.bundles.find((x) => x.side === side);
        if (b) files[side] = await renderSide(templatesRoot, buildRenderContext(full, b), memo);
      }
      needs = deriveNeeds(files.cloud, files.edge, plan.versions.k3s ?? '');
      byPlatform.set(bundle.platformString, needs);
    }
    const mine = needs.filter((n) => n.side === bundle.side);
    byBundle.set(bundle.name, mine);
    const shipped = bundle.images.map((i) => i.ref);
    for (const gap of missingNeeds(mine, bundle.side, shipped)) {
      problems.push(`${lm.displayPath}: the ${bundle.side} bundle (${bundle.platformString}) lacks image ${gap.ref}, needed by ${gap.consumers.join('; ')}`);
    }
    for (const ref of unneededImages(mine, bundle.side, shipped)) {
      bundle.notes.push(`image ${ref}: nothing the ${bundle.side} installer deploys runs it; shipped because the manifest lists it`);
    }
  }
  if (problems.length > 0) {
    throw new UserError([...new Set(problems)].join('\n'), { code: 'manifest', hint: 'add each image under components.<component>.images.<side> in the manifest (the side whose nodes run it)' });
  }
  return byBundle;
}
