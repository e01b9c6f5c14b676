import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { startBundleWorld, type BundleWorld } from './world.js';

/**
 * Runs test/verify/verify-sh.bats (bats --tap) against the verify.sh inside real bundles: built here
 * (local registry + release server, see world.ts) and unpacked with tar. A missing bats is a failure.
 */
let world: BundleWorld;
let unpacked: string;

before(async () => {
  world = await startBundleWorld();
  const b = await world.build(join(world.work, 'out'));
  unpacked = join(world.work, 'unpacked');
  await mkdir(unpacked);
  for (const f of [b.cloud, b.edge]) execFileSync('tar', ['xf', f, '-C', unpacked]);
});

after(async () => {
  await world?.stop();
});

test('verify.sh in the bundle: passes when intact, fails naming the file when tampered (bats)', () => {
  const root = process.env.KP_ROOT ?? process.cwd();
  const r = spawnSync('bats', ['--tap', join(root, 'test/verify/verify-sh.bats')], {
    env: { ...process.env, KP_BUNDLES: unpacked },
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(r.error, undefined, `bats could not run (install bats): ${r.error?.message}`);
  const tap = `${r.stdout}${r.stderr}`;
  assert.match(tap, /^1\.\.6$/m, tap);
  assert.doesNotMatch(tap, /^not ok/m, tap);
  assert.equal(r.status, 0, tap);
  assert.equal((tap.match(/^ok \d+/gm) ?? []).length, 6, tap);
});
