/**
 * The measurement behind keeping the hand-written tar code (issue 16 item 5): the project's TarWriter,
 * docker readTar and bundle TarStreamParser against node-tar 7 (a dependency) and tar-stream (only a
 * transitive dependency of dockerode through tar-fs, 2.x), over the files of a directory.
 *
 *   node --import tsx bench/tar-libraries.ts <dir with a top/ folder of blobs> [runs=3]
 *
 * Prints the medians of `runs` timings (wall and CPU time: on a shared machine the CPU time is the steadier) per contender and, for the writers, whether the output is
 * byte-identical to TarWriter's and the first header fields that differ.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { finished, pipeline } from 'node:stream/promises';
import { createRequire } from 'node:module';
import * as tar from 'tar';
import { TarWriter } from '../src/archive/tar-writer.js';
import { readTar } from '../src/engines/docker/tar-reader.js';
import { TarStreamParser } from '../src/bundle/read.js';

const dir = process.argv[2] ?? '/tmp/kp-tar-bench';
const runs = Number(process.argv[3] ?? 3);
/** KP_TAR_BENCH=read: the readers only. */
const readOnly = process.env.KP_TAR_BENCH === 'read';
const MTIME = 1700000000;

/** Runs `fn` `runs` times; prints and returns the medians of wall time and of this process's CPU time (user + system). */
async function median(name: string, fn: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    await fn();
    const c = process.cpuUsage(c0);
    wall.push(Number(process.hrtime.bigint() - t0) / 1e6);
    cpu.push((c.user + c.system) / 1000);
  }
  const mid = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const m = { wall: mid(wall), cpu: mid(cpu) };
  console.log(`${name.padEnd(36)} wall ${m.wall.toFixed(0).padStart(6)} ms  cpu ${m.cpu.toFixed(0).padStart(6)} ms  (wall ${wall.map((t) => t.toFixed(0)).join(', ')})`);
  return m;
}

async function writeOurs(files: string[], out: string): Promise<void> {
  const ws = createWriteStream(out);
  const tw = new TarWriter(ws, { mtime: MTIME });
  await tw.addDirectory('top');
  await tw.addDirectory('top/blobs');
  for (const f of files) await tw.addFile(`top/blobs/${f}`, join(dir, 'top/blobs', f), { mode: 0o644 });
  await tw.finish();
  ws.end();
  await finished(ws);
}

async function writeNodeTar(files: string[], out: string): Promise<void> {
  // The closest node-tar gets: portable (no uid/gid/uname/gname/atime/ctime), fixed mtime, explicit sorted order.
  await tar.c({ file: out, cwd: dir, portable: true, mtime: new Date(MTIME * 1000), noDirRecurse: true }, ['top', 'top/blobs', ...files.map((f) => `top/blobs/${f}`)]);
}

const FIELDS: [string, number, number][] = [['name', 0, 100], ['mode', 100, 8], ['uid', 108, 8], ['gid', 116, 8], ['size', 124, 12], ['mtime', 136, 12], ['chksum', 148, 8], ['typeflag', 156, 1], ['magic', 257, 8], ['uname', 265, 32], ['prefix', 345, 155]];

async function compare(a: string, b: string, label: string): Promise<void> {
  const [x, y] = [await readFile(a), await readFile(b)];
  if (x.equals(y)) return console.log(`${label}: byte-identical to TarWriter`);
  const diff: string[] = [];
  for (const [f, off, len] of FIELDS) {
    const p = x.subarray(off, off + len), q = y.subarray(off, off + len);
    if (!p.equals(q)) diff.push(`${f} ${JSON.stringify(p.toString('latin1').replace(/\0+$/, '\\0'))} vs ${JSON.stringify(q.toString('latin1').replace(/\0+$/, '\\0'))}`);
  }
  console.log(`${label}: NOT byte-identical (${x.length} vs ${y.length} bytes); first header: ${diff.join('; ') || 'same, later bytes differ'}`);
}

type TarStream = { pack(): NodeJS.ReadWriteStream & { entry(h: object, cb: (e?: Error) => void): NodeJS.WritableStream; finalize(): void }; extract(): NodeJS.WritableStream & { on(e: 'entry', f: (h: object, s: NodeJS.ReadableStream, next: () => void) => void): void } };

/** tar-stream, when some dependency brought it (it is not one of ours). */
function loadTarStream(): TarStream | undefined {
  try {
    return createRequire(import.meta.url)('tar-stream') as TarStream;
  } catch {
    console.log('tar-stream: not installed, skipped');
    return undefined;
  }
}

async function benchWriters(files: string[], ours: string, theirs: string, tarStream: TarStream | undefined): Promise<void> {
  await median('write: TarWriter', () => writeOurs(files, ours));
  await median('write: node-tar c()', () => writeNodeTar(files, theirs));
  await compare(ours, theirs, 'node-tar c()');
  if (tarStream) {
    const ts = tarStream;
    const tsOut = join(dir, 'tar-stream.tar');
    await median('write: tar-stream pack', async () => {
      const pack = ts.pack();
      const done = pipeline(pack, createWriteStream(tsOut));
      const entry = (h: object, src?: string) =>
        new Promise<void>((resolve, reject) => {
          const e = pack.entry(h, (err) => (err ? reject(err) : resolve()));
          if (src) createReadStream(src, { highWaterMark: 1 << 20 }).pipe(e);
        });
      const base = { mtime: new Date(MTIME * 1000), uid: 0, gid: 0, uname: '', gname: '' };
      await entry({ ...base, name: 'top/', type: 'directory', mode: 0o755 });
      await entry({ ...base, name: 'top/blobs/', type: 'directory', mode: 0o755 });
      for (const f of files) {
        const src = join(dir, 'top/blobs', f);
        await entry({ ...base, name: `top/blobs/${f}`, mode: 0o644, size: (await readFile(src)).length }, src);
      }
      pack.finalize();
      await done;
    });
    await compare(ours, tsOut, 'tar-stream pack');
    await rm(tsOut, { force: true });
  }
  await rm(theirs, { force: true });

}

async function benchReaders(ours: string, tarStream: TarStream | undefined): Promise<void> {
  const src = () => createReadStream(ours, { highWaterMark: 1 << 20 });
  await median('read: docker readTar (pull)', async () => {
    let n = 0;
    for await (const e of readTar(src())) for await (const c of e.body) n += c.length;
    return n;
  });
  await median('read: bundle TarStreamParser (push)', async () => {
    let n = 0;
    const p = new TarStreamParser(() => ({ data: (c) => void (n += c.length), end: () => undefined }));
    for await (const c of src()) p.write(c as Buffer);
    if (!p.end().complete) throw new Error('incomplete');
    return n;
  });
  await median('read: node-tar Parser', async () => {
    let n = 0;
    const p = new tar.Parser({ onReadEntry: (e) => e.on('data', (c: Buffer) => void (n += c.length)) });
    await pipeline(src(), p as unknown as NodeJS.WritableStream);
    return n;
  });
  if (tarStream) {
    const ts = tarStream;
    await median('read: tar-stream extract', async () => {
      let n = 0;
      const x = ts.extract();
      x.on('entry', (_h, s, next) => {
        s.on('data', (c: Buffer) => void (n += c.length));
        s.on('end', next);
        s.resume();
      });
      await pipeline(src(), x);
      return n;
    });
  }
}

async function main(): Promise<void> {
  const files = (await readdir(join(dir, 'top/blobs'))).sort();
  const ours = join(dir, 'ours.tar'), theirs = join(dir, 'node-tar.tar');
  console.log(`${files.length} files under ${dir}/top/blobs`);
  const tarStream = loadTarStream();
  if (readOnly) await writeOurs(files, ours);
  else await benchWriters(files, ours, theirs, tarStream);
  await benchReaders(ours, tarStream);
  await rm(ours, { force: true });
}

await main();
