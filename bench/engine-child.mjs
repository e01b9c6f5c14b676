/**
 * Runs one registry-engine build in its own process so the bench can read its peak RSS.
 * argv[2]: JSON {images, arch, outFile, cacheDir, registriesFile, concurrency}. Prints one JSON line:
 * seconds, sizes, sha256, maxRssKb and the phases (seconds from the start): `resolved` (manifests and
 * configs, what engine.collect waits for), `fetched` (every blob in the cache), `written` (archive done).
 * Same steps as engine.archive (collect, then the shared writer), timed between them.
 */
// Plain JavaScript over the built CLI (dist/, `npm run build` first): the build measured is the code
// that ships, without the TypeScript loader of the other bench files (tsx compiled modules imported
// lazily during the build, inside the timed window, and added ~40 MB to the peak RSS).
import { createRegistryEngine, loadRegistriesConfig } from '../dist/engines/registry/index.js';
import { writeCollected } from '../dist/engines/write.js';
import { parseArch } from '../dist/platform.js';

/** @type {{ images: string[]; arch: string; outFile: string; cacheDir: string; registriesFile: string; concurrency?: number }} */
const args = JSON.parse(process.argv[2] ?? '{}');
const registries = await loadRegistriesConfig(args.registriesFile);
const engine = createRegistryEngine({ registries, offline: true });
const t0 = process.hrtime.bigint();
const since = () => Number(process.hrtime.bigint() - t0) / 1e9;
const req = {
  images: args.images,
  platform: parseArch(args.arch),
  outFile: args.outFile,
  cacheDir: args.cacheDir,
  mtime: 0,
  ...(args.concurrency ? { concurrency: args.concurrency } : {}),
};
const collected = await engine.collect(req);
const resolved = since();
let fetched = 0;
void collected.done.then(() => (fetched = since()), () => {});
const res = await writeCollected([collected], req);
const seconds = since();
await engine.close();
process.stdout.write(
  `${JSON.stringify({ seconds, phases: { resolved, fetched, written: seconds }, size: res.size, uniqueBlobBytes: res.uniqueBlobBytes, totalBlobBytes: res.totalBlobBytes, sha256: res.sha256, maxRssKb: process.resourceUsage().maxRSS })}\n`,
);
