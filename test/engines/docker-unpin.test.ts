import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Unpinner } from '../../src/engines/docker/unpin.js';

/** A removal the test finishes by hand, so the order and overlap of the daemon's deletions are visible. */
function fakeDaemon() {
  const log: string[] = [];
  const pending = new Map<string, () => void>();
  let running = 0;
  let most = 0;
  const remove = (tag: string) =>
    new Promise<void>((resolve, reject) => {
      running++;
      most = Math.max(most, running);
      log.push(`start ${tag}`);
      pending.set(tag, () => {
        running--;
        log.push(`end ${tag}`);
        if (tag === 'gone') reject(new Error('404-ish'));
        else resolve();
      });
    });
  const finishOne = async (tag: string) => {
    await new Promise((r) => setImmediate(r));
    const f = pending.get(tag);
    assert.ok(f, `no removal of ${tag} is running (log: ${log.join(', ')})`);
    pending.delete(tag);
    f();
    await new Promise((r) => setImmediate(r));
  };
  return { log, remove, finishOne, most: () => most, idle: () => pending.size === 0 };
}

describe('docker engine: removing the private tags', () => {
  it('removes nothing before every image is pulled, then each saved image, one at a time', async () => {
    const d = fakeDaemon();
    const u = new Unpinner(d.remove);
    u.pinned('a');
    u.pinned('b');
    u.pinned('c');
    u.done('a');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(d.log, [], 'a tag went while an image was still to be pulled (it may share layers)');
    u.allPulled();
    await d.finishOne('a');
    assert.deepEqual(d.log, ['start a', 'end a']);
    u.done('c');
    u.done('b');
    await d.finishOne('c');
    await d.finishOne('b');
    assert.deepEqual(d.log, ['start a', 'end a', 'start c', 'end c', 'start b', 'end b']);
    assert.equal(d.most(), 1, 'two deletions ran at once');
    await u.finish();
    assert.ok(u.seconds() > 0);
  });

  it('finish() removes every tag left (saved or not) and waits for the last deletion; errors are ignored', async () => {
    const d = fakeDaemon();
    const u = new Unpinner(d.remove);
    u.pinned('gone');
    u.pinned('x');
    u.done('gone');
    let finished = false;
    const f = u.finish().then(() => (finished = true));
    await d.finishOne('gone');
    assert.equal(finished, false);
    await d.finishOne('x');
    await f;
    assert.equal(finished, true);
    assert.deepEqual(d.log, ['start gone', 'end gone', 'start x', 'end x']);
    // Nothing is removed twice, and a tag never pinned is never removed.
    u.done('x');
    u.done('never');
    await u.finish();
    assert.ok(d.idle());
    assert.equal(d.log.length, 4);
  });
});
