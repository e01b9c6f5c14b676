import { test } from 'node:test';
import assert from 'node:assert/strict';
import { heldSink, type ProgressSink } from '../../src/progress/sink.js';

function recorder(): { sink: ProgressSink; log: string[] } {
  const log: string[] = [];
  return {
    log,
    sink: {
      start: (i, n) => void log.push(`start ${i} ${n}`),
      bytes: (i, n) => void log.push(`bytes ${i} ${n}`),
      cached: (i, n) => void log.push(`cached ${i} ${n}`),
      done: (i, d) => void log.push(`done ${i} ${d}`),
      note: (i, m) => void log.push(`note ${i} ${m}`),
    },
  };
}

test('heldSink: nothing until release; then every start first, the rest in order, later events as they come', () => {
  const { sink, log } = recorder();
  const h = heldSink(sink);
  h.bytes('a', 10);
  h.start('b', 50);
  h.cached!('b', 5);
  h.done('a', 'ok');
  h.start('a', 10);
  h.note('b', 'from cache');
  assert.deepEqual(log, []);
  h.release();
  assert.deepEqual(log, ['start b 50', 'start a 10', 'bytes a 10', 'cached b 5', 'done a ok', 'note b from cache']);
  h.bytes('b', 45);
  h.start('c', 1);
  h.release(); // again: no effect
  assert.deepEqual(log.slice(6), ['bytes b 45', 'start c 1']);
});

test('heldSink: events never released are dropped; cached falls back to bytes on a sink without it', () => {
  const { sink, log } = recorder();
  heldSink(sink).bytes('a', 1);
  assert.deepEqual(log, []);
  const plain: string[] = [];
  const h = heldSink({ start() {}, bytes: (i, n) => void plain.push(`bytes ${i} ${n}`), done() {}, note() {} });
  h.cached!('x', 7);
  h.release();
  assert.deepEqual(plain, ['bytes x 7']);
});
