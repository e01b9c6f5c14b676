import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { requireBinary, run, startProcess, waitUntil } from './process.js';

export interface TestContainerd {
  address: string;
  /** Runs `ctr --address <sock> <args>`. */
  ctr(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

/**
 * A private containerd (own root, state and socket in a temp dir; CRI plugin disabled), as root
 * without systemd. Stopped by the PID it was started with.
 */
export async function startContainerd(opts: { address?: string } = {}): Promise<TestContainerd> {
  requireBinary('/usr/bin/containerd', 'containerd');
  requireBinary('/usr/bin/ctr', 'containerd');
  const dir = await mkdtemp(join(tmpdir(), 'kp-containerd-'));
  // A caller may place the socket where a script under test looks for it (e.g. <sysroot>/run/containerd/).
  const address = opts.address ?? join(dir, 'containerd.sock');
  await mkdir(dirname(address), { recursive: true });
  const config = join(dir, 'config.toml');
  await writeFile(
    config,
    [
      'version = 2',
      `root = "${join(dir, 'root')}"`,
      `state = "${join(dir, 'state')}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${address}"`,
      '[ttrpc]',
      `  address = "${address}.ttrpc"`,
      '',
    ].join('\n'),
  );
  const proc = startProcess('/usr/bin/containerd', ['--config', config], { logFile: join(dir, 'containerd.log') });
  const ctr = (args: string[]) => run('/usr/bin/ctr', ['--address', address, ...args], { timeoutMs: 120_000 });
  try {
    await waitUntil('containerd', async () => existsSync(address) && (await ctr(['version'])).code === 0, proc);
  } catch (e) {
    await proc.stop();
    throw e;
  }
  return {
    address,
    ctr,
    async stop() {
      await proc.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Asserts `ctr images check` reports every one of `refs` complete (each blob of the image present). */
export async function assertImagesComplete(ctd: TestContainerd, refs: string[], namespace = 'k8s.io'): Promise<void> {
  const check = await ctd.ctr(['-n', namespace, 'images', 'check']);
  assert.equal(check.code, 0, check.stderr);
  for (const ref of refs) {
    const line = check.stdout.split('\n').find((l) => l.startsWith(`${ref} `));
    assert.ok(line && /complete \((\d+)\/\1\)/.test(line), `ctr images check: ${line ?? `${ref} missing`}`);
  }
}

/** `ctr images import --platform` of an archive into namespace k8s.io; asserts it succeeded. */
export async function importArchive(ctd: TestContainerd, file: string, platform: string): Promise<void> {
  const imp = await ctd.ctr(['-n', 'k8s.io', 'images', 'import', '--platform', platform, file]);
  assert.equal(imp.code, 0, `ctr import failed: ${imp.stderr}${imp.stdout}`);
}

/** `ctr images ls` in namespace k8s.io: the raw text and its rows split into columns (header dropped). */
export async function listImages(ctd: TestContainerd): Promise<{ stdout: string; rows: string[][] }> {
  const ls = await ctd.ctr(['-n', 'k8s.io', 'images', 'ls']);
  assert.equal(ls.code, 0, ls.stderr);
  return { stdout: ls.stdout, rows: ls.stdout.trim().split('\n').slice(1).map((l) => l.split(/\s+/)) };
}
