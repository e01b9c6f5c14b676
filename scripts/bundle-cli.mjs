// The last step of `npm run build`: the CLI (dist/main.js and everything it imports, our modules and
// the dependencies') as a few ES module files in dist/ (esbuild), which bin/kubeprepare.js runs when they
// are there. Node's ES module loader resolves, reads and links each file on its own: a build loaded ~240
// files (zod alone ~95) before its first download, ~0.3 s of a six-bundle build's ~0.75 s start on the
// 2-core VM; bundled, `build --dry-run --arch amd64,arm64,arm` took 0.58 s against 0.75 s (2026-12-03,
// medians of 5). The commands' own lazy imports stay lazy (one file each: `splitting`). Everything lands
// flat in dist/ beside the compiled modules, so that paths taken from import.meta.url (version.ts:
// PACKAGE_ROOT, the templates) and dist/fast-path.cjs (help.json beside it) resolve as they do there.
import { build } from 'esbuild';
import { rm, readdir } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(root, 'dist');
for (const f of await readdir(dist)) if (f.startsWith('bundle-') || f === 'main.bundle.js') await rm(join(dist, f));

await build({
  entryPoints: [join(dist, 'main.js')],
  outdir: dist,
  entryNames: '[name].bundle',
  chunkNames: 'bundle-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // dockerode (the docker engine only, loaded lazily) brings optional native modules: from node_modules.
  // fast-path.cjs is shared with bin/kubeprepare.cjs and reads help.json beside it.
  external: ['dockerode', './fast-path.cjs'],
  // The CommonJS dependencies call require() for node's own modules.
  banner: { js: "import { createRequire as __kpCreateRequire } from 'node:module'; const require = __kpCreateRequire(import.meta.url);" },
  legalComments: 'none',
  logLevel: 'warning',
});
