import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ProgressTracker } from '../../src/progress/tracker.js';
import { fmtDuration, itemLine, stageLines, totalLine } from '../../src/progress/format.js';

/** The model and the line formats on a hand-driven clock (no real time involved). */
function clocked() {
  let now = 1_000_000;
  const tracker = new ProgressTracker(() => now);
  return { tracker, advance: (ms: number) => (now += ms), now: () => now };
}

const MB = 1048576;

describe('progress tracker', () => {
  it('computes totals, the rate of the last seconds and the time left from the known sizes', () => {
    const { tracker, advance } = clocked();
    const sink = tracker.sink('image', 'bundle-a');
    sink.start('img-1', 10 * MB);
    sink.start('img-2', 30 * MB);
    // 4 MB found in the cache: done, but not transferred.
    sink.cached!('img-1', 4 * MB);
    for (let i = 0; i < 4; i++) {
      advance(500);
      sink.bytes('img-2', MB);
    }
    const t = tracker.totals();
    assert.equal(t.bytes, 8 * MB);
    assert.equal(t.total, 40 * MB);
    assert.equal(t.items, 2);
    assert.equal(Math.round(t.rate), 2 * MB); // 4 MB in 2 s; the cached 4 MB are not in it
    assert.equal(Math.round(t.eta!), 16); // 32 MB left at 2 MB/s
    assert.match(totalLine(t), /^total 8\.0 MB \/ 40 MB  2\.0 MB\/s  16s left  \(0 of 2 done\)$/);
  });

  it('counts a done item at its full size (blobs another image fetched), and no time left is guessed for unknown sizes', () => {
    const { tracker, advance } = clocked();
    const sink = tracker.sink('image');
    sink.start('a', 2 * MB);
    sink.start('b'); // a docker daemon pull: no size
    advance(1000);
    sink.bytes('a', MB);
    sink.bytes('b', MB);
    assert.equal(tracker.totals().eta, undefined);
    assert.match(totalLine(tracker.totals()), /time left unknown/);
    sink.done('a');
    sink.done('b');
    const t = tracker.totals();
    assert.equal(t.bytes, 3 * MB);
    assert.equal(t.total, 3 * MB);
    assert.equal(t.finished, 2);
    assert.deepEqual(tracker.active(), []);
  });

  it('keeps the same image of two bundles apart, and starts an item that is only reported done', () => {
    const { tracker } = clocked();
    const seen: string[] = [];
    tracker.on((e) => seen.push(e.type === 'note' ? `note ${e.scope} ${e.item}` : `${e.type} ${e.state.scope} ${e.state.item}`));
    tracker.sink('image', 'cloud').start('agent', 5);
    tracker.sink('image', 'edge').start('agent', 5);
    tracker.sink('binary', 'edge').done('runc', 'cached');
    // A note is not an item (notes name bundles too, and come before an image's start).
    tracker.sink('binary', 'edge').note('kubeprepare-edge', 'no containerd for arm');
    assert.deepEqual(seen, ['start cloud agent', 'start edge agent', 'start edge runc', 'done edge runc', 'note edge kubeprepare-edge']);
    assert.equal(tracker.active('cloud').length, 1);
    assert.equal(tracker.totals().total, 10);
  });
});

describe('progress lines', () => {
  it('fits an image line to the width, keeping the end of the reference and the figures', () => {
    const { tracker, advance, now } = clocked();
    const sink = tracker.sink('image');
    const ref = 'docker.io/rancher/mirrored-library-traefik-with-a-very-long-name:2.11.24';
    sink.start(ref, 40 * MB);
    advance(1000);
    sink.bytes(ref, 12 * MB);
    const s = tracker.active()[0]!;
    const line = itemLine(s, now(), 60);
    assert.ok(line.length <= 60, line);
    assert.match(line, /^….*:2\.11\.24\s+12 MB \/ 40 MB\s+12 MB\/s$/);
    assert.equal(itemLine(s, now(), 200).trimEnd().startsWith(ref), true);
  });

  it('drops the counts, then the time left, from a total line that does not fit, never cutting a figure', () => {
    const t = { bytes: 12 * MB, total: 40 * MB, items: 5, finished: 2, rate: 3 * MB, eta: 9.4 };
    assert.equal(totalLine(t), 'total 12 MB / 40 MB  3.0 MB/s  10s left  (2 of 5 done)');
    assert.equal(totalLine(t, 40), 'total 12 MB / 40 MB  3.0 MB/s  10s left');
    assert.equal(totalLine(t, 30), 'total 12 MB / 40 MB  3.0 MB/s');
  });

  it('lists at most the given number of items, then how many more', () => {
    const { tracker } = clocked();
    const sink = tracker.sink('image');
    for (const i of [1, 2, 3, 4, 5]) sink.start(`img-${i}`, MB);
    const lines = stageLines(tracker.active(), tracker.totals(), 0, 80, 3);
    assert.equal(lines.length, 5);
    assert.equal(lines[3], '… 2 more');
    assert.match(lines[4]!, /^total 0 B \/ 5\.0 MB/);
  });

  it('formats time left in seconds, minutes and hours', () => {
    assert.deepEqual([fmtDuration(0.2), fmtDuration(59), fmtDuration(75), fmtDuration(3725)], ['1s', '59s', '1m15s', '1h02m']);
  });
});
