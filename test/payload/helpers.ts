// Shared by the payload tests and the bats suite: renders scripts-templates/ for one side and arch
// with the context a build ships (test/fixtures/payload/context.ts: buildRenderContext over
// manifests/versions.yaml), optionally completed into a fake bundle (stub binaries that forward to
// test/bats/stubs, a dummy image archive, bundle.json and SHA256SUMS).
import { DISK_FILE, diskTsv } from '../../src/bundle/disk.js';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { renderSide, type TemplateFile } from '../../src/render/render.js';
import type { RenderContext } from '../../src/render/context.js';
import type { Arch } from '../../src/platform.js';
import { makeContext } from '../fixtures/payload/context.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const TEMPLATES_ROOT = join(REPO_ROOT, 'scripts-templates');
export const STUBS_DIR = join(REPO_ROOT, 'test', 'bats', 'stubs');

export async function renderFiles(side: RenderContext['side'], arch: Arch): Promise<{ ctx: RenderContext; files: TemplateFile[] }> {
  const ctx = await makeContext(side, arch);
  return { ctx, files: await renderSide(TEMPLATES_ROOT, ctx) };
}

function write(path: string, content: string | Buffer, mode: number): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
  chmodSync(path, mode);
}

function forwarder(name: string): string {
  return `#!/bin/sh\n# test stand-in for the bundled ${name}: forwards to the recording stub\nexec "\${KP_STUB_DIR:?}/${name}" "$@"\n`;
}

function listAll(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listAll(p));
    else out.push(p);
  }
  return out;
}

/** Writes SHA256SUMS for every file under dir (paths relative to dir, sha256sum -c format). */
export function writeSums(dir: string): void {
  const lines = listAll(dir)
    .map((p) => relative(dir, p).split('\\').join('/'))
    .filter((rel) => rel !== 'SHA256SUMS')
    .map((rel) => `${createHash('sha256').update(readFileSync(join(dir, rel))).digest('hex')}  ${rel}`);
  writeFileSync(join(dir, 'SHA256SUMS'), lines.join('\n') + '\n');
}

/** Renders a complete fake bundle into outDir (which must not exist yet or be empty). */
export async function writeFakeBundle(side: RenderContext['side'], arch: Arch, outDir: string): Promise<RenderContext> {
  const { ctx, files } = await renderFiles(side, arch);
  for (const f of files) write(join(outDir, f.path), f.content, f.mode);
  write(join(outDir, ctx.files.keadm), forwarder('keadm'), 0o755);
  write(join(outDir, ctx.files.imagesArchive), `fake OCI archive for ${ctx.bundleName}\n`, 0o644);
  if (ctx.files.k3s) write(join(outDir, ctx.files.k3s), forwarder('k3s'), 0o755);
  if (ctx.files.k3sInstallScript) write(join(outDir, ctx.files.k3sInstallScript), forwarder('k3s-install.sh'), 0o755);
  if (ctx.files.runc) write(join(outDir, ctx.files.runc), forwarder('runc'), 0o755);
  if (ctx.files.containerdTarball) {
    const tmp = join(outDir, '.containerd-src');
    write(join(tmp, 'bin', 'containerd'), forwarder('containerd'), 0o755);
    write(join(tmp, 'bin', 'ctr'), forwarder('ctr'), 0o755);
    write(join(tmp, 'bin', 'containerd-shim-runc-v2'), forwarder('containerd-shim-runc-v2'), 0o755);
    tar(join(outDir, ctx.files.containerdTarball), tmp, ['bin']);
    spawnSync('rm', ['-rf', tmp]);
  }
  if (ctx.files.cniPluginsTarball) {
    const tmp = join(outDir, '.cni-src');
    for (const p of ['bridge', 'host-local', 'loopback', 'portmap']) write(join(tmp, p), forwarder(`cni-${p}`), 0o755);
    tar(join(outDir, ctx.files.cniPluginsTarball), tmp, ['.']);
    spawnSync('rm', ['-rf', tmp]);
  }
  write(join(outDir, 'bundle.json'), JSON.stringify({ name: ctx.bundleName, side, arch, versions: ctx.versions, images: ctx.images.all }, null, 2) + '\n', 0o644);
  // install.sh's disk preflight reads it (src/bundle/disk.ts): 1 MiB for the image store, as a build writes it.
  write(join(outDir, DISK_FILE), diskTsv([{ step: 'images', path: side === 'cloud' ? '/var/lib/rancher/k3s/agent/containerd' : '/var/lib/containerd', bytes: 1 << 20, what: 'fake image store' }]), 0o644);
  writeSums(outDir);
  return ctx;
}

function tar(archive: string, cwd: string, entries: string[]): void {
  mkdirSync(dirname(archive), { recursive: true });
  const r = spawnSync('tar', ['-czf', archive, '-C', cwd, ...entries], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tar failed: ${r.stderr}`);
}
