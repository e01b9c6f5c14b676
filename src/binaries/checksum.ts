import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import type { ChecksumSource, PlannedBinary } from '../plan/plan.js';
import { key, writeFileAtomic } from './cache-files.js';
import { fetchWithRetry } from './http.js';

/** The digest a binary download must have, and with which algorithm. */
export interface ExpectedDigest {
  algorithm: 'sha256' | 'sha512';
  digest: string;
}

/** The digest the download must have: pinned in the manifest, or read from the upstream checksum file. */
export async function expectedDigest(b: PlannedBinary, opts: { cacheDir: string; signal?: AbortSignal }): Promise<ExpectedDigest> {
  const src: ChecksumSource = b.checksum;
  if (src.kind === 'pinned') {
    if (/^0+$/.test(src.digest)) {
      throw new UserError(`${b.name}: the manifest pins no real digest for ${b.upstreamUrl} (all zeros)`, {
        code: 'manifest',
        hint: `download it from a trusted network, run 'sha256sum' on it and put the digest under sha256.pinned in the manifest`,
      });
    }
    return { algorithm: 'sha256', digest: src.digest };
  }
  const cachePath = join(opts.cacheDir, 'checksums', `${key(src.upstreamUrl)}.txt`);
  let text = await readFile(cachePath, 'utf8').catch(() => undefined);
  if (text === undefined) {
    const res = await fetchWithRetry(src.url, { signal: opts.signal ?? null }, `${b.name} checksum`);
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw UserError.runtime(res.status === 404 ? 'not-found' : 'network', `${b.name}: checksum file ${src.url} answered HTTP ${res.status}`, 'check the version in the manifest and the mirror (--binary-mirror)');
    }
    text = await res.text();
    parseChecksumFile(text, src.entry, src.algorithm, src.url); // validate before caching
    await writeFileAtomic(cachePath, text);
  }
  return { algorithm: src.algorithm, digest: parseChecksumFile(text, src.entry, src.algorithm, src.url) };
}

/**
 * Accepts `sha256sum`/`sha512sum` output (`<hex>  <name>` or `<hex> *<name>`, any number of lines) or a
 * file holding one bare digest (KubeEdge's format).
 */
export function parseChecksumFile(text: string, entry: string, algorithm: 'sha256' | 'sha512', url: string): string {
  const hexLen = algorithm === 'sha256' ? 64 : 128;
  const re = new RegExp(`^([a-fA-F0-9]{${hexLen}})(?:\\s+\\*?(.+))?$`);
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  const parsed = lines.map((l) => re.exec(l)).filter((m): m is RegExpExecArray => m !== null);
  const named = parsed.find((m) => m[2] !== undefined && (m[2] === entry || m[2].split('/').pop() === entry));
  if (named?.[1]) return named[1].toLowerCase();
  if (parsed.length === 1 && parsed[0]?.[2] === undefined && lines.length === 1) return (parsed[0][1] ?? '').toLowerCase();
  throw UserError.runtime(
    'manifest',
    `checksum file ${url} has no ${algorithm} entry for '${entry}'`,
    `expected '<${hexLen} hex digits>  ${entry}' or one bare digest; check sha256.entry/algorithm in the manifest`,
  );
}
