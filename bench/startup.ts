/**
 * Start-up time of the CLI (issue 15 item 2): median wall time of 10 runs each of
 * `node bin/kubeprepare.js --version` and `--help` against the 0.15 s target, with node's own start-up
 * (`node -e 0`, same run) as the floor for reading the figures on a loaded machine. Build dist/ first
 * (`npm run build`): bin/ runs dist/main.js when it exists and falls back to tsx (much slower) otherwise.
 *
 *   node --import tsx bench/startup.ts        # prints one line per case and PASS/FAIL; exit 1 on FAIL
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TARGET_S = 0.15;
const RUNS = 10;

function medianSeconds(args: string[]): number {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr.toString()}`);
    times.push(dt);
  }
  times.sort((a, b) => a - b);
  return (times[(RUNS - 1) >> 1]! + times[RUNS >> 1]!) / 2;
}

if (!existsSync(join(ROOT, 'dist', 'main.js'))) {
  console.error('startup: dist/main.js is missing: run `npm run build` first');
  process.exit(1);
}
const floor = medianSeconds(['-e', '0']);
console.log(`node -e 0 (floor)       ${floor.toFixed(3)} s`);
let failed = false;
for (const flag of ['--version', '--help']) {
  const s = medianSeconds([join('bin', 'kubeprepare.js'), flag]);
  const pass = s <= TARGET_S;
  failed ||= !pass;
  console.log(`kubeprepare ${flag.padEnd(10)} ${s.toFixed(3)} s  (${(s / floor).toFixed(1)}x node's start)  target <= ${TARGET_S} s  ${pass ? 'PASS' : 'FAIL'}`);
}
process.exitCode = failed ? 1 : 0;
