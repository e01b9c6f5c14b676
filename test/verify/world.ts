import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { TarWriter } from '../../src/archive/tar-writer.js';
import { TarStreamParser } from '../../src/bundle/read.js';

/** The bundle-building world lives in the harness; this module adds tar helpers to take a bundle apart in
 * memory and write a tampered copy with the project's own TarWriter. */
export { CLOUD, EDGE, fakeElf, sha256, startBundleWorld, type BundleWorld } from '../harness/bundle-world.js';

/** One entry of a tar held in memory (test bundles are small). */
export interface MemEntry {
  path: string;
  dir: boolean;
  mode: number;
  data: Buffer;
}

/** Reads a whole (uncompressed) tar into memory with the project's stream parser. */
export function readTarBuffer(buf: Buffer): MemEntry[] {
  const out: MemEntry[] = [];
  const p = new TarStreamParser((h) => {
    const e: MemEntry = { path: h.path, dir: h.type === 'directory', mode: h.mode, data: Buffer.alloc(0) };
    out.push(e);
    const parts: Buffer[] = [];
    return { data: (c) => parts.push(Buffer.from(c)), end: () => void (e.data = Buffer.concat(parts)) };
  });
  p.write(buf);
  const st = p.end();
  if (!st.complete) throw new Error(`readTarBuffer: ${st.problem}`);
  return out;
}

/** Writes entries (in the given order) as a tar with the project's deterministic TarWriter. */
export async function writeTarBuffer(entries: MemEntry[], mtime = 1764547200): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const { Writable } = await import('node:stream');
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(Buffer.from(c));
      cb();
    },
  });
  const tw = new TarWriter(sink, { mtime });
  for (const e of entries) {
    if (e.dir) await tw.addDirectory(e.path, { mode: e.mode });
    else await tw.addBuffer(e.path, e.data, { mode: e.mode });
  }
  await tw.finish();
  sink.end();
  await finished(sink);
  return Buffer.concat(chunks);
}

/** Rewrites `src` (plain tar) into `dest` after `edit` changed its entries. */
export async function repack(src: string, dest: string, edit: (entries: MemEntry[]) => MemEntry[] | void | Promise<MemEntry[] | void>): Promise<string> {
  const entries = readTarBuffer(await readFile(src));
  const edited = (await edit(entries)) ?? entries;
  const out = createWriteStream(dest);
  out.end(await writeTarBuffer(edited));
  await finished(out);
  return dest;
}

export function entry(entries: MemEntry[], rel: string): MemEntry {
  const e = entries.find((x) => x.path.split('/').slice(1).join('/') === rel);
  if (!e) throw new Error(`no entry ${rel}`);
  return e;
}
