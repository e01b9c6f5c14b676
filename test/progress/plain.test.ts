import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fmtBytes } from '../../src/util/format.js';
import { cliEnv, REFS, runCli, startProgressWorld, type ProgressWorld } from './world.js';

/** Without a terminal (CI): a line per finished image as before, plus a total line every interval. */
describe('plain view (no terminal)', () => {
  let w: ProgressWorld;
  before(async () => {
    w = await startProgressWorld(1024 * 1024);
  });
  after(async () => {
    await w?.stop();
  });

  it('prints a total line every KP_PROGRESS_INTERVAL_MS during the pull and a line per finished image', async () => {
    const out = join(w.work, 'plain.tar');
    const r = await runCli(w.imagesArgs(out), cliEnv({ CI: 'true', KP_PROGRESS_INTERVAL_MS: '250' }));
    assert.equal(r.code, 0, r.err);
    // Plain lines only: no cursor movement or erasing (nothing is redrawn).
    assert.doesNotMatch(r.err, /\x1b\[/);
    const lines = r.err.split('\n');
    const sum = fmtBytes(w.sizes.reduce((a, b) => a + b, 0));
    const totals = lines.map((l, i) => ({ i, m: /total ([\d.]+) (B|KB|MB) \/ ([\d.]+ MB)  [\d.]+ (?:B|KB|MB)\/s  ((?:\d+m)?\d+s left|time left unknown)/.exec(l) })).filter((x) => x.m);
    assert.ok(totals.length >= 3, `at least 3 total lines in a pull of a few seconds at 250 ms:\n${r.err}`);
    for (const t of totals) assert.equal(t.m![3], sum, lines[t.i]);
    const scale = { B: 1, KB: 1024, MB: 1048576 } as const;
    const bytes = totals.map((t) => Number(t.m![1]) * scale[t.m![2] as keyof typeof scale]);
    for (let i = 1; i < bytes.length; i++) assert.ok(bytes[i]! >= bytes[i - 1]!, `totals do not go back: ${bytes.join(', ')}`);
    const done = REFS.map((ref) => lines.findIndex((l) => l.includes(`${ref}: done (`)));
    for (const [k, d] of done.entries()) assert.ok(d >= 0, `a done line for ${REFS[k]}:\n${r.err}`);
    assert.ok(totals[0]!.i < Math.max(...done), 'the totals appear during the pull, before the last image is done');
    assert.equal(r.out.trim().split('\n').length, 1, r.out);
    assert.ok(r.out.startsWith(`${out}  `), r.out);
  });
});
