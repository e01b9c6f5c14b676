/**
 * Start-up time of the CLI (issue 15 item 2): median wall time of 15 runs each of
 * `kubeprepare --version` and `--help` (the package.json bin, bin/kubeprepare.cjs) against the 0.15 s target, with node's own start-up
 * (`node -e 0`, same run) as the floor for reading the figures on a loaded machine. The three run in
 * turn (node, --version, --help, node, …), so that the host's load drifts over all of them alike (run
 * one after the other, --version once measured 0.119 s against node's own 0.126 s, --help 0.165 s). Build dist/ first
 * (`npm run build`): bin/ runs dist/main.js when it exists and falls back to tsx (much slower) otherwise.
 *
 *   node --import tsx bench/startup.ts        # prints one line per case and PASS/FAIL; exit 1 on FAIL
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TARGET_S = 0.15;
const RUNS = 15;

function seconds(args: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr.toString()}`);
  return dt;
}

/** The median of RUNS runs of each case, the cases in turn. */
function medians(cases: string[][]): number[] {
  const times = cases.map(() => [] as number[]);
  for (let i = 0; i < RUNS; i++) cases.forEach((args, k) => times[k]!.push(seconds(args)));
  return times.map((t) => {
    t.sort((a, b) => a - b);
    return (t[(RUNS - 1) >> 1]! + t[RUNS >> 1]!) / 2;
  });
}

if (!existsSync(join(ROOT, 'dist', 'main.js'))) {
  console.error('startup: dist/main.js is missing: run `npm run build` first');
  process.exit(1);
}
const flags = ['--version', '--help'];
// The installed command's entry (package.json bin), as `kubeprepare --version` runs it.
const bin = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: { kubeprepare: string } }).bin.kubeprepare;
const [floor, ...cli] = medians([['-e', '0'], ...flags.map((f) => [bin, f])]);
console.log(`node -e 0 (floor)       ${floor!.toFixed(3)} s`);
let failed = false;
for (const [i, flag] of flags.entries()) {
  const s = cli[i]!;
  const pass = s <= TARGET_S;
  failed ||= !pass;
  console.log(`kubeprepare ${flag.padEnd(10)} ${s.toFixed(3)} s  (${(s / floor!).toFixed(1)}x node's start)  target <= ${TARGET_S} s  ${pass ? 'PASS' : 'FAIL'}`);
}
process.exitCode = failed ? 1 : 0;
