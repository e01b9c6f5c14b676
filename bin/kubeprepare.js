#!/usr/bin/env node
// Entry for the `kubeprepare` and `bundle` commands. Runs the compiled CLI from dist/;
// in a source checkout without a build, falls back to tsx so `npx kubeprepare` still works.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
// `npm run build` bundles the compiled CLI into a few files (scripts/bundle-cli.mjs): fewer to load.
const bundled = join(root, 'dist', 'main.bundle.js');
const compiled = join(root, 'dist', 'main.js');
if (existsSync(bundled)) {
  await import(pathToFileURL(bundled).href);
} else if (existsSync(compiled)) {
  await import(pathToFileURL(compiled).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(join(root, 'src', 'main.ts')).href);
}
