import { spawn, spawnSync } from 'node:child_process';
import { createGzip } from 'node:zlib';
import type { Writable, Readable } from 'node:stream';
import { UserError } from '../errors.js';
import type { Compression } from '../plan/plan.js';

export interface Compressor {
  /** Where the tar stream is written. */
  input: Writable;
  /** The compressed bytes. */
  output: Readable;
  /** Resolves when the compressor exited cleanly. */
  done: Promise<void>;
}

/**
 * Deterministic compressors: gzip from zlib (header mtime 0, fixed level), zstd from the `zstd` program
 * (output is independent of thread count). `none` has none (undefined): the tar stream is then written
 * straight into its file, not through a pass-through, as the file releases each chunk at its write
 * callback and a pass-through does not, so cached files are copied through reused buffers
 * (chunk-release.ts).
 */
export function createCompressor(kind: Compression): Compressor | undefined {
  if (kind === 'none') return undefined;
  if (kind === 'gzip') {
    const gz = createGzip({ level: 6, chunkSize: 1 << 20 });
    return { input: gz, output: gz, done: Promise.resolve() };
  }
  if (spawnSync('zstd', ['--version'], { stdio: 'ignore' }).status !== 0) {
    throw new UserError('--compression zstd needs the zstd program, which is not installed', { code: 'missing-tool', hint: 'install zstd (apt-get install zstd) or use --compression none|gzip' });
  }
  const child = spawn('zstd', ['-q', '-c', '-3', '-T0', '--no-progress'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`zstd exited with ${code}: ${stderr.trim()}`))));
  });
  return { input: child.stdin, output: child.stdout, done };
}
