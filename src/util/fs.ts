import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { createWriteStream, fdatasync, type WriteStream } from 'node:fs';
import { dirname, basename, join, resolve, sep } from 'node:path';
import { finished } from 'node:stream/promises';
import { fsError, isMachineFailure } from '../errors.js';

/**
 * `mkdir -p` that reports the real failure: Node's recursive mkdir turns EROFS into ENOENT
 * (nodejs/node#47098), so on ENOENT the path is created one level at a time to get the errno that counts.
 */
export async function mkdirp(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    const parts = resolve(dir).split(sep);
    for (let i = 2; i <= parts.length; i++) {
      await mkdir(parts.slice(0, i).join(sep)).catch((x: NodeJS.ErrnoException) => {
        if (x.code !== 'EEXIST') throw x;
      });
    }
  }
}

/** A temp path beside `finalPath` that never looks like a finished output (hidden, `.partial` suffix). */
export function tempPathFor(finalPath: string): string {
  return join(dirname(finalPath), `.${basename(finalPath)}.${process.pid}.${randomBytes(4).toString('hex')}.partial`);
}

/**
 * Runs `write` against a temp file next to `finalPath`, fsyncs it and renames it into place only when
 * `write` succeeded. On failure the temp file is removed and nothing named `finalPath` appears; a full,
 * read-only or forbidden filesystem is reported as such, naming `finalPath` (fsError).
 */
export async function writeAtomically<T>(finalPath: string, write: (out: WriteStream, tempPath: string) => Promise<T>, opts: { durable?: boolean } = {}): Promise<T> {
  const staged = await writeStaged(finalPath, write, opts);
  await staged.commit();
  return staged.result;
}

/** A complete, fsynced temp file that becomes `finalPath` on `commit()`, or is removed on `discard()`. */
export interface Staged<T> {
  result: T;
  finalPath: string;
  tempPath: string;
  commit(): Promise<void>;
  discard(): Promise<void>;
}

/**
 * Like writeAtomically, but leaves the rename to the caller: a build stages every tarball and its
 * SHA256SUMS, and renames them only once all of them are complete, so a build that fails (or is killed)
 * leaves the previous output of the same names as it was. On failure of `write` the temp file is removed.
 */
export async function writeStaged<T>(finalPath: string, write: (out: WriteStream, tempPath: string) => Promise<T>, opts: { durable?: boolean } = {}): Promise<Staged<T>> {
  await mkdirp(dirname(finalPath)).catch((e: unknown) => Promise.reject(fsError(e, finalPath, 'writing', outputDir(finalPath))));
  const tmp = tempPathFor(finalPath);
  const out = createWriteStream(tmp, { flags: 'wx' });
  // A failed file write (ENOSPC) is kept, never an uncaught 'error' event: writers that see only its
  // echo ("the archive file was closed", ERR_STREAM_DESTROYED) fail with it as the cause.
  let writeFailure: unknown;
  out.on('error', (e) => (writeFailure ??= e));
  const writeback = opts.durable !== false ? earlyWriteback(out) : undefined;
  try {
    const result = await write(out, tmp);
    const failedSync = await writeback?.stop();
    if (failedSync) throw failedSync;
    out.end();
    await finished(out);
    // durable: false skips the fsync (an intermediate file: 140 MB cost ~1.8 s of fsync on the 2-core VM).
    if (opts.durable !== false) {
      const fh = await open(tmp, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    return {
      result,
      finalPath,
      tempPath: tmp,
      commit: () => rename(tmp, finalPath).catch((e: unknown) => Promise.reject(fsError(e, finalPath, 'writing', outputDir(finalPath)))),
      discard: () => rm(tmp, { force: true }),
    };
  } catch (e) {
    await writeback?.stop();
    // A write still in flight fails with ERR_STREAM_DESTROYED; the caller's error `e` is what counts.
    out.on('error', () => {});
    out.destroy();
    // The file is opened asynchronously: a failure before the open completed would otherwise remove
    // nothing and then see the open create it (an empty temp file left behind). Remove it once closed.
    if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()));
    await rm(tmp, { force: true });
    throw fsError(isMachineFailure(writeFailure) ? writeFailure : e, finalPath, 'writing', outputDir(finalPath));
  }
}

/** Bytes written between two early fdatasyncs (see earlyWriteback). */
const WRITEBACK_STEP = 16 << 20;

/**
 * Starts the disk writes of a file being written while it is still being written: every WRITEBACK_STEP
 * bytes an fdatasync runs in the thread pool (one at a time; the writes go on meanwhile), so the final
 * fsync has only the last bytes to flush instead of the whole file. Measured on the 2-core VM
 * (2026-12-02, 163 MB images archive, cold build): the fsync at the end cost ~0.45 s of 1.6-1.8 s.
 * `stop()` waits for the sync in flight and returns the first failure of any (EIO, ENOSPC): the kernel
 * reports a writeback error to one fsync only, so the final fsync would not see it again.
 */
export function earlyWriteback(
  out: WriteStream,
  step = WRITEBACK_STEP,
  sync: (fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => void = fdatasync,
): { stop(): Promise<NodeJS.ErrnoException | undefined> } {
  let synced = 0;
  let inFlight: Promise<void> | undefined;
  let failure: NodeJS.ErrnoException | undefined;
  const tick = setInterval(() => {
    // The stream's fd (not in @types/node's WriteStream): null until the file is open.
    const fd = (out as unknown as { fd: number | null }).fd;
    if (inFlight || typeof fd !== 'number' || out.bytesWritten - synced < step) return;
    synced = out.bytesWritten;
    inFlight = new Promise<void>((resolve) =>
      sync(fd, (e) => {
        failure ??= e ?? undefined;
        inFlight = undefined;
        resolve();
      }),
    );
  }, 20);
  tick.unref();
  return {
    async stop() {
      clearInterval(tick);
      await inFlight;
      return failure;
    },
  };
}

/** Temp names this program writes in an output directory (tempPathFor, the build's work directory); group 1 is the writer's PID. */
const OWN_TEMP = [/^\..+\.(\d+)\.[a-f0-9]{8}\.partial$/, /^\.kubeprepare-work-(\d+)$/];

/**
 * Removes temp files and work directories of this program's own naming (OWN_TEMP) in `dir` whose
 * writer is no longer running: what a build killed with SIGKILL left behind. Run at the start of every
 * build (and `images`) before it writes into `dir`; entries of a build still running (another PID that
 * is alive) are left alone. Returns the names removed.
 */
export async function removeStaleTemps(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const pid = OWN_TEMP.map((re) => re.exec(name)?.[1]).find((x) => x !== undefined);
    if (pid === undefined || pidAlive(Number(pid))) continue;
    await rm(join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/** The directory a user chose for `file`: its own, or the one holding this program's work directory it is in. */
function outputDir(file: string): string {
  const dir = dirname(file);
  return OWN_TEMP[1]!.test(basename(dir)) ? dirname(dir) : dir;
}

/** Whether a process of that PID runs (this one counts; EPERM means it exists under another user). */
export function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Test-only fault point: with KUBEPREPARE_TEST_FAIL_AT=<phase>[#<n>]:fail the <n>th (default first)
 * write of <phase> throws here (an injected failure mid-write); with :hang it reports the point on
 * stderr and waits forever, for a test to SIGKILL it. Phases: bundle-tarball, checksums
 * (test/build/integrity.test.ts).
 */
export async function testFaultPoint(phase: string): Promise<void> {
  const m = /^([a-z-]+)(?:#(\d+))?:(fail|hang)$/.exec(process.env.KUBEPREPARE_TEST_FAIL_AT ?? '');
  if (!m || m[1] !== phase) return;
  const nth = (faultCounts.get(phase) ?? 0) + 1;
  faultCounts.set(phase, nth);
  if (nth !== Number(m[2] ?? 1)) return;
  if (m[3] === 'fail') throw new Error(`KUBEPREPARE_TEST_FAIL_AT: injected failure while writing (${phase} #${nth})`);
  process.stderr.write(`KUBEPREPARE_TEST_FAIL_AT: ${phase} #${nth} reached\n`);
  await new Promise<never>(() => setInterval(() => {}, 1 << 30));
}
const faultCounts = new Map<string, number>();
