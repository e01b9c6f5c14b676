import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../harness/process.js';
import { startBundleWorld, type BundleWorld } from '../harness/bundle-world.js';

/**
 * Issue 16 item 3: a failure of the machine - no space left on the output or cache filesystem, a
 * read-only filesystem, permission denied - is reported as that failure (never as a network or registry
 * problem), names the path and the fix, leaves no partial file behind and exits 1. Each case runs the
 * built CLI against the local registry and release server of the bundle world, in a private mount
 * namespace (`unshare -m`) where a few-MB tmpfs (nearly filled) or a read-only bind mount is set up
 * under a directory this test made; nothing is mounted over a host path.
 */
let world: BundleWorld;
let base: string;
let n = 0;

before(async () => {
  world = await startBundleWorld();
  base = await mkdtemp(join(tmpdir(), 'kp-machine-'));
});
after(async () => {
  await world?.stop();
  if (base) await rm(base, { recursive: true, force: true });
});

const TMPFS_BYTES = 4 * 1024 * 1024;
/** Left free on the tmpfs: less than any bundle or the cache of one build needs. */
const FREE_BYTES = 48 * 1024;
/** Words of a network explanation, which a machine failure must never be given. */
const NETWORK_WORDS = /network|mirror|cannot reach|unreachable|connection|registry (?:or|is)|try again later/i;

/** A tmpfs of TMPFS_BYTES at `dir`, filled up to FREE_BYTES. */
const fullTmpfs = (dir: string) =>
  `mount -t tmpfs -o size=${TMPFS_BYTES} kp-machine-test "${dir}"\nhead -c ${TMPFS_BYTES - FREE_BYTES} /dev/zero > "${dir}/filler" 2>/dev/null || true`;
/** `dir` bound onto itself read-only. */
const readOnly = (dir: string) => `mount --bind "${dir}" "${dir}"\nmount -o remount,ro,bind "${dir}"`;

interface Outcome {
  code: number | null;
  err: string;
  /** Everything in the output directory after the run (the tmpfs filler excepted). */
  outEntries: string[];
  /** Temp or partial files anywhere in the cache after the run. */
  cacheTemps: string[];
}

/**
 * Runs `kubeprepare build` in a private mount namespace after `setup` (shell), with `prefix` before
 * node (e.g. setpriv); lists the output directory and the cache's temp files inside the namespace
 * (a tmpfs is gone once it ends).
 */
async function buildIn(setup: string, dirs: { out: string; cache: string }, prefix: string[] = []): Promise<Outcome> {
  const lists = join(base, `lists-${++n}`);
  await mkdir(lists);
  const root = process.env.KP_ROOT ?? process.cwd();
  const script = `set -eu
${setup}
set +e
"$@"
rc=$?
(cd "${dirs.out}" && find . -mindepth 1 ! -name filler) > "${lists}/out" 2>/dev/null
(cd "${dirs.cache}" && find . \\( -name '*.partial' -o -name '*.tmp' -o -name '.x-*' \\)) > "${lists}/cache" 2>/dev/null
exit $rc`;
  const args = [...prefix, process.execPath, join(root, 'bin/kubeprepare.js'), 'build', '--quiet', '--verbose', '--arch', 'arm64', '--manifest', world.manifestPath, '--out', dirs.out, '--cache-dir', dirs.cache];
  const r = await run('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', ...args], { timeoutMs: 180_000 });
  const list = async (f: string) => (await readFile(join(lists, f), 'utf8').catch(() => '')).split('\n').filter(Boolean);
  return { code: r.code, err: r.stderr, outEntries: await list('out'), cacheTemps: await list('cache') };
}

async function dirsFor(name: string): Promise<{ dir: string; out: string; cache: string }> {
  const dir = join(base, `${name}-${++n}`);
  await mkdir(join(dir, 'out'), { recursive: true });
  await mkdir(join(dir, 'cache'), { recursive: true });
  return { dir, out: join(dir, 'out'), cache: join(dir, 'cache') };
}

/** Exit 1; the error names `path`, the errno and its meaning, the code, a fix; no network words; nothing partial left. */
function assertMachineFailure(o: Outcome, want: { path: string; errno: RegExp; meaning: RegExp; code: string }): void {
  const firstLine = o.err.split('\n').find((l) => l.startsWith('error: ')) ?? '';
  const fix = o.err.split('\n').find((l) => l.startsWith('  fix: ')) ?? '';
  assert.equal(o.code, 1, o.err);
  assert.ok(firstLine.includes(want.path), `names ${want.path}: ${o.err}`);
  assert.match(firstLine, want.errno);
  assert.match(firstLine, want.meaning);
  assert.match(o.err, new RegExp(`^  code: ${want.code}$`, 'm'));
  assert.ok(fix.length > 0, `a fix: ${o.err}`);
  assert.doesNotMatch(`${firstLine}\n${fix}`, NETWORK_WORDS);
  assert.deepEqual(o.outEntries, [], 'nothing (no temp or partial file, no work directory) in the output directory');
  assert.deepEqual(o.cacheTemps, [], 'no temp or partial file in the cache');
}

describe('machine failures are reported as such (issue 16 item 3)', () => {
  it('no space left on the output filesystem: disk, naming the output path (ENOSPC)', async () => {
    const d = await dirsFor('out-full');
    const o = await buildIn(fullTmpfs(d.out), d);
    assertMachineFailure(o, { path: d.out, errno: /\(ENOSPC\)/, meaning: /no space left/, code: 'disk' });
  });

  it('no space left on the cache filesystem: disk, naming the cache (ENOSPC)', async () => {
    const d = await dirsFor('cache-full');
    const o = await buildIn(fullTmpfs(d.cache), d);
    assertMachineFailure(o, { path: d.cache, errno: /\(ENOSPC\)/, meaning: /no space left/, code: 'disk' });
  });

  it('a read-only output directory: read-only, naming the output path (EROFS)', async () => {
    const d = await dirsFor('out-ro');
    const o = await buildIn(readOnly(d.out), d);
    assertMachineFailure(o, { path: d.out, errno: /\(EROFS\)/, meaning: /read-only/, code: 'read-only' });
  });

  it('a read-only cache: read-only, naming the cache (EROFS)', async () => {
    const d = await dirsFor('cache-ro');
    const o = await buildIn(readOnly(d.cache), d);
    assertMachineFailure(o, { path: d.cache, errno: /\(EROFS\)/, meaning: /read-only/, code: 'read-only' });
  });

  // Root passes any permission check: the CLI runs without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH.
  const noDacOverride = ['setpriv', '--bounding-set=-dac_override,-dac_read_search'];

  it('an output directory this user may not write: permission, naming the output path (EACCES)', async () => {
    const d = await dirsFor('out-denied');
    await chmod(d.out, 0o555);
    const o = await buildIn('', d, noDacOverride);
    assertMachineFailure(o, { path: d.out, errno: /\(EACCES\)/, meaning: /permission denied/, code: 'permission' });
  });

  it('a cache this user may not write: permission, naming the cache (EACCES)', async () => {
    const d = await dirsFor('cache-denied');
    await chmod(d.cache, 0o555);
    const o = await buildIn('', d, noDacOverride);
    assertMachineFailure(o, { path: d.cache, errno: /\(EACCES\)/, meaning: /permission denied/, code: 'permission' });
  });
});
