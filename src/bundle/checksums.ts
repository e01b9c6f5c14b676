import { readFile, rename, writeFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';

/**
 * Writes `<outDir>/SHA256SUMS` for the tarballs of this build, keeping lines for other files that are
 * still present (an earlier build for another arch). Written to a temp name and renamed.
 */
export async function writeChecksumsFile(outDir: string, entries: { file: string; sha256: string }[]): Promise<string> {
  const path = join(outDir, 'SHA256SUMS');
  const lines = new Map<string, string>();
  const old = await readFile(path, 'utf8').catch(() => '');
  for (const l of old.split('\n')) {
    const m = /^([a-f0-9]{64})\s+\*?(.+)$/.exec(l.trim());
    if (m?.[1] && m[2] && (await stat(join(outDir, m[2])).then(() => true, () => false))) lines.set(m[2], m[1]);
  }
  for (const e of entries) lines.set(basename(e.file), e.sha256);
  const text = [...lines.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, sum]) => `${sum}  ${name}\n`)
    .join('');
  const tmp = join(outDir, `.SHA256SUMS.${process.pid}.partial`);
  await writeFile(tmp, text);
  await rename(tmp, path);
  return path;
}
