import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLimiter } from '../../src/util/limit.js';

/** A task that records its start and finishes when released. */
function gate() {
  const started: string[] = [];
  const releases = new Map<string, () => void>();
  const task = (name: string) => () =>
    new Promise<string>((resolve) => {
      started.push(name);
      releases.set(name, () => resolve(name));
    });
  const release = async (name: string) => {
    releases.get(name)!();
    await new Promise((r) => setImmediate(r));
  };
  return { started, task, release };
}

test('at most n at once; waiting tasks start in call order without ranks', async () => {
  const limit = createLimiter(2);
  const g = gate();
  const all = ['a', 'b', 'c', 'd'].map((n) => limit(g.task(n)));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(g.started, ['a', 'b']);
  await g.release('b');
  assert.deepEqual(g.started, ['a', 'b', 'c']);
  await g.release('a');
  await g.release('c');
  await g.release('d');
  assert.deepEqual(await Promise.all(all), ['a', 'b', 'c', 'd']);
});

test('waiting tasks start lowest rank first, call order within a rank (the downloads, in archive order)', async () => {
  const limit = createLimiter(1);
  const g = gate();
  const first = limit(g.task('first'), 'sha256:9');
  const later = [
    limit(g.task('c1'), 'sha256:c'),
    limit(g.task('a'), 'sha256:a'),
    limit(g.task('c2'), 'sha256:c'),
    limit(g.task('b'), 'sha256:b'),
  ];
  await new Promise((r) => setImmediate(r));
  for (const n of ['first', 'a', 'b', 'c1', 'c2']) await g.release(n);
  await Promise.all([first, ...later]);
  assert.deepEqual(g.started, ['first', 'a', 'b', 'c1', 'c2']);
});

test('a task that throws synchronously rejects its own promise and frees its slot', async () => {
  const limit = createLimiter(1);
  await assert.rejects(limit(() => {
    throw new Error('boom');
  }), /boom/);
  assert.equal(await limit(async () => 'next'), 'next');
});
