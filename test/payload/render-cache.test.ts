// What a build reuses between renders in one process (src/render/render.ts: one renderer per set of
// partials, each template compiled once per renderer, each bundle's context rendered once per build with a
// RenderMemo; src/bundle/workloads.ts: rendered YAML parsed once per content) must never change what is
// rendered or derived.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RenderMemo, renderSide } from '../../src/render/render.js';
import type { RenderContext } from '../../src/render/context.js';
import { manifestNeeds } from '../../src/bundle/workloads.js';
import { renderFiles } from './helpers.js';

function templateRoot(partial: string, template: string): string {
  const root = mkdtempSync(join(tmpdir(), 'kp-tpl-'));
  mkdirSync(join(root, 'partials'));
  mkdirSync(join(root, 'common'));
  writeFileSync(join(root, 'partials', 'who.hbs'), partial);
  writeFileSync(join(root, 'common', 'a.txt'), template);
  return root;
}

test('the same template under two sets of partials renders with each its own partials', async () => {
  const ctx = { side: 'cloud', name: 'x' } as unknown as RenderContext;
  const a = templateRoot('partial A {{name}}', 'file: {{> who}}\n');
  const b = templateRoot('partial B {{name}}', 'file: {{> who}}\n');
  try {
    assert.equal((await renderSide(a, ctx))[0]!.content, 'file: partial A x\n');
    assert.equal((await renderSide(b, ctx))[0]!.content, 'file: partial B x\n');
    assert.equal((await renderSide(a, ctx))[0]!.content, 'file: partial A x\n');
  } finally {
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  }
});

test('a template changed on disk is rendered from its new source; each render uses its own context', async () => {
  const root = templateRoot('', 'v1 {{name}}\n');
  try {
    const ctx = (name: string) => ({ side: 'cloud', name }) as unknown as RenderContext;
    assert.equal((await renderSide(root, ctx('x')))[0]!.content, 'v1 x\n');
    assert.equal((await renderSide(root, ctx('y')))[0]!.content, 'v1 y\n');
    writeFileSync(join(root, 'common', 'a.txt'), 'v2 {{name}}\n');
    assert.equal((await renderSide(root, ctx('x')))[0]!.content, 'v2 x\n');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the shipped templates render per platform as before: amd64 twice the same, arm64 differs where the platform does', async () => {
  const one = await renderFiles('cloud', 'amd64');
  const two = await renderFiles('cloud', 'amd64');
  const arm = await renderFiles('cloud', 'arm64');
  assert.deepEqual(two.files, one.files);
  const byPath = (fs: typeof one.files) => new Map(fs.map((f) => [f.path, f.content]));
  const differing = [...byPath(one.files)].filter(([p, c]) => byPath(arm.files).get(p) !== c).map(([p]) => p);
  assert.ok(differing.length > 0, 'no file names the platform');
  for (const p of differing) assert.match(byPath(arm.files).get(p)!, /arm64/, `${p} differs, but not by its platform`);
});

test('needs from the same YAML content derived twice are the same; invalid YAML fails every time', () => {
  const yaml = 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: n}\nspec:\n  template:\n    spec:\n      containers: [{name: c, image: "docker.io/library/busybox:1.36"}]\n';
  const first = manifestNeeds([{ path: 'a.yaml', content: yaml }]);
  assert.ok(first.length > 0);
  assert.deepEqual(manifestNeeds([{ path: 'b.yaml', content: yaml }]).map((n) => n.ref), first.map((n) => n.ref));
  for (let i = 0; i < 2; i++) assert.throws(() => manifestNeeds([{ path: 'bad.yaml', content: 'a: [1,\n' }]), /bad\.yaml: not valid YAML/);
});

test("one build's renders (a RenderMemo): sources read once, the same context rendered once; another build reads and renders anew", async () => {
  const root = templateRoot('', 'v1 {{name}}\n');
  try {
    const ctx = (name: string) => ({ side: 'cloud', name }) as unknown as RenderContext;
    const memo = new RenderMemo();
    const first = await renderSide(root, ctx('x'), memo);
    assert.equal(first[0]!.content, 'v1 x\n');
    first[0]!.content = 'changed by its caller';
    writeFileSync(join(root, 'common', 'a.txt'), 'v2 {{name}}\n');
    // The needs were derived from the first render: the bundle gets the same files (the caller's change not among them).
    assert.equal((await renderSide(root, ctx('x'), memo))[0]!.content, 'v1 x\n');
    // Every bundle of one build renders from the sources the build read first (a template edited meanwhile is not half taken).
    assert.equal((await renderSide(root, ctx('y'), memo))[0]!.content, 'v1 y\n');
    assert.equal((await renderSide(root, ctx('x'), new RenderMemo()))[0]!.content, 'v2 x\n');
    assert.equal((await renderSide(root, ctx('y')))[0]!.content, 'v2 y\n');
    assert.equal(memo.sides.size, 2);
    assert.equal(memo.sources.size, 1);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
