import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Tampered copies of real bundles, made by tools that share no code with the product: Python's tarfile
 * (`pyTamper`: a few lines of Python run after the helpers of tamper.py, with the bundle at hand as `b`)
 * and GNU tar (`gnuTar`). The product's own TarWriter is never involved, so a defect it shares with the
 * reader cannot hide a tampering.
 */
const PRELUDE = readFileSync(fileURLToPath(new URL('./tamper.py', import.meta.url)), 'utf8');

/**
 * Runs `python3` with tamper.py's helpers and then `steps`, which see `b` (the bundle at `src`, a Tar
 * whose paths are relative to its top directory), `ARGS` (the extra arguments) and `DEST`; `b` is saved
 * to `dest` afterwards unless the steps wrote DEST themselves and set `SAVE = False`.
 */
export function pyTamper(src: string, dest: string, steps: string, args: string[] = []): string {
  const script = `${PRELUDE}\nb = Tar.bundle(SRC)\nSAVE = True\n${steps}\nif SAVE:\n    b.save(DEST)\n`;
  execFileSync('python3', ['-c', script, src, dest, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  return dest;
}

/** Runs GNU tar with `args` (the machine's `tar`, checked to be GNU tar). */
export function gnuTar(args: string[], cwd?: string): string {
  const version = execFileSync('tar', ['--version'], { encoding: 'utf8' });
  if (!/GNU tar/.test(version)) throw new Error(`tar is not GNU tar: ${version.split('\n')[0]}`);
  return execFileSync('tar', args, { encoding: 'utf8', ...(cwd ? { cwd } : {}), stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs a Python snippet with the tamper helpers and returns what it prints (JSON by convention). */
export function pyRead<T = unknown>(steps: string, args: string[] = []): T {
  const script = `${PRELUDE}\n${steps}\n`;
  return JSON.parse(execFileSync('python3', ['-c', script, '-', '-', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as T;
}
