import { loadManifest } from '../manifest/load.js';
import { makePlan, type BuildPlan, type Compression } from '../plan/plan.js';
import type { Platform } from '../platform.js';
import type { Side } from '../manifest/schema.js';
import { table } from '../util/format.js';

export interface PlanOptions {
  manifest: string;
  platforms: Platform[];
  only?: Side;
  outDir: string;
  compression: Compression;
  binaryMirrors?: { from: string; to: string }[];
}

/** What `build` would fetch and write, without downloading anything. */
export async function plan(opts: PlanOptions): Promise<BuildPlan> {
  const lm = await loadManifest(opts.manifest);
  return makePlan(lm, {
    platforms: opts.platforms,
    only: opts.only,
    outDir: opts.outDir,
    compression: opts.compression,
    binaryMirrors: opts.binaryMirrors ?? [],
  });
}

/** `plan --json`: one object per bundle with its side, arch, images[] (ref, engine/pull when set per image) and binaries[].url. */
export function planToJson(p: BuildPlan): object {
  return {
    manifest: p.manifestPath,
    versions: p.versions,
    sourceDateEpoch: p.mtime,
    sourceDateEpochFrom: p.mtimeSource,
    compression: p.compression,
    bundles: p.bundles.map((b) => ({
      side: b.side,
      arch: b.arch,
      platform: b.platformString,
      name: b.name,
      output: b.outFile,
      images: b.images.map((i) => ({ ref: i.ref, component: i.component, role: i.role ?? null, engine: i.engine ?? null, pull: i.pull ?? null })),
      binaries: b.binaries.map((x) => ({
        name: x.name,
        component: x.component,
        version: x.version,
        url: x.url,
        upstreamUrl: x.upstreamUrl,
        checksum: x.checksum.kind === 'file' ? { url: x.checksum.url, algorithm: x.checksum.algorithm, entry: x.checksum.entry } : { pinned: x.checksum.digest },
        extract: x.extract ?? null,
        dest: x.dest,
      })),
      notes: b.notes,
    })),
  };
}

export function planToText(p: BuildPlan): string {
  const out: string[] = [];
  out.push(`versions: ${Object.entries(p.versions).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  out.push(`mtime ${p.mtime} (from ${p.mtimeSource}), compression ${p.compression}`);
  for (const b of p.bundles) {
    out.push('', `${b.side} ${b.platformString} → ${b.outFile}`);
    out.push(table(b.images.map((i) => ['image', i.ref, [i.component, i.engine ? `engine ${i.engine}` : '', i.pull === 'never' ? 'pull never' : ''].filter(Boolean).join(', ')])));
    out.push(table(b.binaries.map((x) => ['binary', x.dest, x.url])));
    for (const n of b.notes) out.push(`note: ${n}`);
  }
  return out.join('\n');
}
