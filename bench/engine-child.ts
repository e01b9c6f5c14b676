/**
 * Runs one registry-engine build in its own process so the bench can read its peak RSS.
 * argv[2]: JSON {images, arch, outFile, cacheDir, registriesFile, concurrency}. Prints one JSON line.
 */
import { createRegistryEngine, loadRegistriesConfig } from '../src/engines/registry/index.js';
import { parseArch } from '../src/platform.js';

const args = JSON.parse(process.argv[2] ?? '{}') as { images: string[]; arch: string; outFile: string; cacheDir: string; registriesFile: string; concurrency?: number };
const registries = await loadRegistriesConfig(args.registriesFile);
const engine = createRegistryEngine({ registries, offline: true });
const t0 = process.hrtime.bigint();
const res = await engine.archive({
  images: args.images,
  platform: parseArch(args.arch),
  outFile: args.outFile,
  cacheDir: args.cacheDir,
  mtime: 0,
  ...(args.concurrency ? { concurrency: args.concurrency } : {}),
});
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
await engine.close();
process.stdout.write(
  `${JSON.stringify({ seconds, size: res.size, uniqueBlobBytes: res.uniqueBlobBytes, totalBlobBytes: res.totalBlobBytes, sha256: res.sha256, maxRssKb: process.resourceUsage().maxRSS })}\n`,
);
