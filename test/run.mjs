#!/usr/bin/env node
// Runs the whole suite with node's test runner (via tsx). Node 20 has no test globs, so the files are
// listed here: every `*.test.ts` below test/. Extra arguments are passed to `node --test`
// (e.g. `npm test -- --test-name-pattern=manifest`). Set KP_TEST_FILES to a comma list to run a subset.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out;
}
let files = walk(join(root, 'test'));
if (process.env.KP_TEST_FILES) {
  const want = process.env.KP_TEST_FILES.split(',').map((s) => s.trim()).filter(Boolean);
  files = files.filter((f) => want.some((w) => f.includes(w)));
}
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const args = ['--import', 'tsx', '--test', '--test-reporter=spec', ...process.argv.slice(2), ...files];
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env: { ...process.env, KP_ROOT: root } });
process.exit(r.status ?? 1);
