import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { requireBinary } from '../harness/process.js';
import { fmtBytes } from '../../src/util/format.js';
import { BIN, REFS, startProgressWorld, type ProgressWorld } from './world.js';

/**
 * The terminal view in a real pseudo-terminal: the CLI runs in a detached tmux session of a given
 * size (its own server socket, killed by that socket at the end) and the test reads the screen with
 * `capture-pane` while the pull runs and after it ended. The registry is slowed down to 1 MB/s per
 * connection so that the pull takes a few seconds.
 */
const TMUX = '/usr/bin/tmux';

interface Screens {
  /** Every screen seen while the command ran, then the final one. */
  all: string[];
  final: string;
  exit: number;
}

const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

async function runInTmux(w: ProgressWorld, name: string, cols: number, args: string[]): Promise<Screens> {
  const sock = join(w.work, `${name}.sock`);
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C.UTF-8', KP_OFFLINE: '1' };
  delete env.CI; // CI selects the plain view even on a terminal
  delete env.TMUX;
  const cmd = `env -u CI ${sh(process.execPath)} ${sh(BIN)} ${args.map(sh).join(' ')}; echo KP-EXIT=$?; sleep 600`;
  execFileSync(TMUX, ['-S', sock, '-f', '/dev/null', 'new-session', '-d', '-x', String(cols), '-y', '40', '-s', name, cmd], { env });
  const all: string[] = [];
  try {
    for (let i = 0; i < 600; i++) {
      // -J joins lines the terminal wrapped: a line wider than the pane shows as one long line.
      const screen = execFileSync(TMUX, ['-S', sock, 'capture-pane', '-p', '-J', '-t', name], { encoding: 'utf8' });
      all.push(screen);
      const m = /KP-EXIT=(\d+)/.exec(screen);
      if (m) return { all, final: screen, exit: Number(m[1]) };
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the command did not end within 60 s; last screen:\n${all[all.length - 1]}`);
  } finally {
    execFileSync(TMUX, ['-S', sock, 'kill-server']);
  }
}

const ITEM = /(progress-view-fixture-with-a-long-name-[abc]:1\.0)\s+([\d.]+ (?:B|KB|MB)) \/ ([\d.]+ MB)\s+[\d.]+ (?:B|KB|MB)\/s$/;
const TOTAL = /total ([\d.]+ (?:B|KB|MB)) \/ ([\d.]+ MB)\s+([\d.]+) (B|KB|MB)\/s\s+((?:\d+m)?\d+s) left/;

describe('terminal view (tmux pseudo-terminal)', () => {
  let w: ProgressWorld;
  before(async () => {
    requireBinary(TMUX, 'tmux');
    w = await startProgressWorld(1024 * 1024);
  });
  after(async () => {
    await w?.stop();
  });

  it('shows a line per active image and a total line with MB/s and time left, redrawn in place', async () => {
    const out = join(w.work, 'tty.tar');
    const s = await runInTmux(w, 'wide', 100, w.imagesArgs(out));
    assert.equal(s.exit, 0, s.final);
    const lines = (screen: string) => screen.split('\n');
    const withItems = s.all.filter((sc) => lines(sc).filter((l) => ITEM.test(l)).length >= 2);
    assert.ok(withItems.length > 0, `no screen showed two image lines with bytes and rate:\n${s.all.slice(-5).join('\n-----\n')}`);
    // Each image line names its total size, as the registry has it.
    const shown = withItems[0]!.split('\n').map((l) => ITEM.exec(l)).filter((m): m is RegExpExecArray => m !== null);
    for (const m of shown) {
      const i = REFS.findIndex((r) => r.endsWith(m[1]!));
      assert.equal(m[3], fmtBytes(w.sizes[i]!), m[0]);
    }
    const sum = w.sizes.reduce((a, b) => a + b, 0);
    const totals = s.all.flatMap((sc) => lines(sc).map((l) => TOTAL.exec(l)).filter((m): m is RegExpExecArray => m !== null));
    assert.ok(totals.length > 0, 'a total line was shown');
    for (const m of totals) assert.equal(m[2], fmtBytes(sum), m[0]);
    assert.ok(totals.some((m) => m[4] === 'MB'), `the total rate reached MB/s: ${totals.map((m) => m[0]).join(' | ')}`);
    // Redrawn in place: never two total lines on one screen, and the final screen has none left.
    for (const sc of s.all) assert.ok(lines(sc).filter((l) => TOTAL.test(l)).length <= 1, sc);
    assert.doesNotMatch(s.final, /total .* left/);
    assert.doesNotMatch(s.final, /MB \/ /);
    assert.match(s.final, /✔ 3 images for linux\/amd64/);
    assert.ok(s.final.includes(`${out}  `), s.final);
  });

  it('keeps every line to the width of a narrow terminal', async () => {
    const s = await runInTmux(w, 'narrow', 60, w.imagesArgs(join(w.work, 'narrow.tar')));
    assert.equal(s.exit, 0, s.final);
    const progressScreens = s.all.filter((sc) => /\/s/.test(sc));
    assert.ok(progressScreens.length > 0, 'progress was shown');
    for (const sc of progressScreens) {
      for (const l of sc.split('\n')) assert.ok([...l].length <= 60, `wider than 60 columns: ${JSON.stringify(l)}`);
    }
    // The image lines keep the tag (the end of the reference) and the figures.
    assert.ok(progressScreens.some((sc) => /…\S*-[abc]:1\.0\s+[\d.]+ (?:B|KB|MB) \/ [\d.]+ MB/.test(sc)), progressScreens[progressScreens.length - 1]);
  });
});
