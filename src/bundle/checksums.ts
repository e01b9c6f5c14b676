import { readFile, stat } from 'node:fs/promises';
import { testFaultPoint, writeStaged, type Staged } from '../util/fs.js';
import { basename, join } from 'node:path';

/**
 * `<outDir>/SHA256SUMS` for the tarballs of this build, keeping lines for other files that are still
 * present (an earlier build for another arch), as a staged temp file: the build renames it after the
 * tarballs it lists.
 */
export async function stageChecksumsFile(outDir: string, entries: { file: string; sha256: string }[]): Promise<Staged<string>> {
  const path = join(outDir, 'SHA256SUMS');
  return stageChecksumsText(path, await checksumsText(outDir, path, entries));
}

function stageChecksumsText(path: string, text: string): Promise<Staged<string>> {
  return writeStaged(path, async (out) => {
    const half = Math.floor(text.length / 2);
    out.write(text.slice(0, half));
    await testFaultPoint('checksums');
    out.write(text.slice(half));
    return path;
  });
}

async function checksumsText(outDir: string, path: string, entries: { file: string; sha256: string }[]): Promise<string> {
  const lines = new Map<string, string>();
  const old = await readFile(path, 'utf8').catch(() => '');
  for (const l of old.split('\n')) {
    const m = /^([a-f0-9]{64})\s+\*?(.+)$/.exec(l.trim());
    if (m?.[1] && m[2] && (await stat(join(outDir, m[2])).then(() => true, () => false))) lines.set(m[2], m[1]);
  }
  for (const e of entries) lines.set(basename(e.file), e.sha256);
  return [...lines.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, sum]) => `${sum}  ${name}\n`)
    .join('');
}
