// Runs the bats suite (test/bats/*.bats: the rendered scripts against PATH stubs, real iptables in
// a network namespace, real openssl) so that `npm test` covers it. bats must be installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './helpers.js';

test('bats suite (test/bats) passes', { timeout: 15 * 60 * 1000 }, () => {
  const version = spawnSync('bats', ['--version'], { encoding: 'utf8' });
  assert.equal(version.error, undefined, `bats is not installed: ${version.error?.message}`);
  const r = spawnSync('bats', ['--tap', join(REPO_ROOT, 'test', 'bats')], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
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
