import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { sha256File } from '../../src/util/hash.js';
import { startBundleWorld, type BundleWorld } from '../harness/bundle-world.js';
import { cliEnv, REFS, runCli, startProgressWorld, type ProgressWorld } from './world.js';

interface Ev {
  v: number;
  event: string;
  t: number;
  kind?: string;
  item?: string | null;
  bundle?: string;
  bytes?: number;
  total?: number | null;
  message?: string;
  totals?: { bytes: number; total: number; items: number; done: number; rate: number; eta: number | null };
  [k: string]: unknown;
}

/** Every stdout line is one JSON event of schema 1; nothing else is on stdout. */
function parseEvents(out: string): Ev[] {
  assert.ok(out.endsWith('\n'), 'stdout ends with a newline');
  return out.slice(0, -1).split('\n').map((l, i) => {
    let e: Ev;
    assert.doesNotThrow(() => (e = JSON.parse(l) as Ev), `stdout line ${i + 1} is not JSON: ${l}`);
    assert.equal(e!.v, 1, l);
    assert.ok(['start', 'progress', 'done', 'note', 'error', 'result'].includes(e!.event), l);
    assert.equal(typeof e!.t, 'number', l);
    return e!;
  });
}

/** Per item (and bundle): one start first, progress between, one done last; returns the done events. */
function checkSequences(events: Ev[]): Ev[] {
  const byItem = new Map<string, Ev[]>();
  for (const e of events) {
    // Notes are not items (they may name a bundle, or come before an image's start).
    if (e.event === 'result' || e.event === 'error' || e.event === 'note') continue;
    const k = `${e.bundle ?? ''} ${e.item}`;
    byItem.set(k, [...(byItem.get(k) ?? []), e]);
  }
  const done: Ev[] = [];
  for (const [k, evs] of byItem) {
    const names = evs.map((e) => e.event);
    assert.equal(names[0], 'start', `${k}: ${names}`);
    assert.equal(names[names.length - 1], 'done', `${k}: ${names}`);
    assert.deepEqual(names.slice(1, -1).filter((n) => n !== 'progress'), [], `${k}: ${names}`);
    const d = evs[evs.length - 1]!;
    assert.equal(d.bytes, d.total, `${k}: done with all its bytes`);
    const moved = evs.filter((e) => e.event === 'progress').map((e) => e.bytes!);
    for (let i = 1; i < moved.length; i++) assert.ok(moved[i]! >= moved[i - 1]!, `${k}: bytes do not go back`);
    done.push(d);
  }
  // The run's byte total never goes back, and the last event is the result.
  const sums = events.filter((e) => e.totals).map((e) => e.totals!.bytes);
  for (let i = 1; i < sums.length; i++) assert.ok(sums[i]! >= sums[i - 1]!, `totals.bytes: ${sums.join(',')}`);
  return done;
}

describe('--json events', () => {
  let w: ProgressWorld;
  before(async () => {
    w = await startProgressWorld(2 * 1024 * 1024);
  });
  after(async () => {
    await w?.stop();
  });

  it('images --json: start, progress, done per image, then the result; final bytes = sum of the image sizes', async () => {
    const out = join(w.work, 'json.tar');
    const r = await runCli(w.imagesArgs(out, ['--json']), cliEnv());
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '', 'no human output on stderr either');
    const events = parseEvents(r.out);
    const done = checkSequences(events);
    assert.deepEqual(done.map((d) => d.item).sort(), [...REFS].sort());
    for (const ref of REFS) assert.ok(events.some((e) => e.event === 'progress' && e.item === ref), `progress for ${ref}`);
    const result = events[events.length - 1]!;
    assert.equal(result.event, 'result');
    assert.equal(result.file, out);
    assert.equal(result.sha256, await sha256File(out));
    const sum = w.sizes.reduce((a, b) => a + b, 0);
    assert.equal(result.totals!.bytes, sum);
    assert.equal(result.totals!.total, sum);
    assert.equal(result.totals!.done, 3);
    assert.equal(done.reduce((n, d) => n + d.bytes!, 0), sum);
    for (const [i, ref] of REFS.entries()) assert.equal(done.find((d) => d.item === ref)!.total, w.sizes[i], ref);
    assert.deepEqual((result.images as { size: number }[]).map((i) => i.size), w.sizes);
  });

  it('images --json: a failure ends with an error event on stdout (and the error on stderr)', async () => {
    const missing = 'docker.io/kubeedge/no-such-image:1.0';
    const args = w.imagesArgs(join(w.work, 'fail.tar'), ['--json']).filter((a) => !REFS.includes(a));
    const r = await runCli([...args, missing], cliEnv());
    assert.notEqual(r.code, 0);
    const events = parseEvents(r.out);
    const last = events[events.length - 1]!;
    assert.equal(last.event, 'error');
    assert.equal(last.item, null);
    assert.match(last.message!, /no-such-image/);
    assert.match(r.err, /^error: .*no-such-image/m);
  });
});

describe('build --json', () => {
  let world: BundleWorld;
  before(async () => {
    world = await startBundleWorld();
  });
  after(async () => {
    await world?.stop();
  });

  it('reports binaries and images per bundle and the bundles written, nothing else on stdout', async () => {
    const out = join(world.work, 'json-out');
    const r = await runCli(['build', '--arch', 'arm64', '--manifest', world.manifestPath, '--out', out, '--cache-dir', join(world.work, 'json-cache'), '--json'], cliEnv());
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    const events = parseEvents(r.out);
    const done = checkSequences(events);
    const bundles = new Set(done.map((d) => d.bundle));
    assert.deepEqual([...bundles].sort(), ['kubeprepare-cloud-v1.22.0-linux-arm64', 'kubeprepare-edge-v1.22.0-linux-arm64']);
    for (const b of bundles) {
      const kinds = new Set(done.filter((d) => d.bundle === b).map((d) => d.kind));
      assert.deepEqual([...kinds].sort(), ['binary', 'image'], b!);
    }
    assert.ok(done.some((d) => d.kind === 'image' && d.item === 'docker.io/kubeedge/edgemesh-agent:v1.17.0' && d.bundle === 'kubeprepare-edge-v1.22.0-linux-arm64'));
    const result = events[events.length - 1]!;
    assert.equal(result.event, 'result');
    assert.equal(result.totals!.bytes, done.reduce((n, d) => n + d.bytes!, 0));
    assert.equal(result.totals!.bytes, result.totals!.total);
    assert.equal(result.totals!.items, done.length);
    const written = result.bundles as { file: string; sha256: string }[];
    assert.equal(written.length, 2);
    for (const b of written) assert.equal(await sha256File(b.file), b.sha256);
    assert.ok(existsSync(result.checksumsFile as string));
  });
});
