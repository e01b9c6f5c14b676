// Runs the bats suite (test/bats/*.bats: the rendered scripts against PATH stubs, real iptables in
// a network namespace, real openssl) so that `npm test` covers it. bats must be installed. The suite runs
// in a private mount namespace where everything but its temp dir is read-only (test/bats/helpers/
// sandbox.sh), so a script writing outside its test root (KP_SYSROOT) fails the test that ran it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { REPO_ROOT } from './helpers.js';

test('bats suite (test/bats) passes', { timeout: 15 * 60 * 1000 }, () => {
  const version = spawnSync('bats', ['--version'], { encoding: 'utf8' });
  assert.equal(version.error, undefined, `bats is not installed: ${version.error?.message}`);
  const sandbox = mkdtempSync(join(tmpdir(), 'kp-bats-sandbox-'));
  const r = spawnSync(join(REPO_ROOT, 'test', 'bats', 'helpers', 'sandbox.sh'), [sandbox, 'bats', '--tap', join(REPO_ROOT, 'test', 'bats')], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    env: { ...process.env, TMPDIR: sandbox },
    maxBuffer: 64 * 1024 * 1024,
  });
  rmSync(sandbox, { recursive: true, force: true });
  assert.notEqual(r.status, 97, `the read-only sandbox could not be made:\n${r.stderr}`);
  const out = `${r.stdout}${r.stderr}`;
  const failures = out
    .split('\n')
    .reduce<string[]>((acc, line) => {
      if (line.startsWith('not ok')) acc.push(line);
      else if (acc.length > 0 && line.startsWith('#')) acc[acc.length - 1] += `\n${line}`;
      return acc;
    }, []);
  const total = /^1\.\.(\d+)/m.exec(out)?.[1];
  assert.ok(total && Number(total) > 0, `bats ran no test:\n${out}`);
  assert.equal(r.status, 0, `bats: ${failures.length} of ${total} failed\n${failures.join('\n') || out}`);
});
