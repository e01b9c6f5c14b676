import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { pushFixtureSet, type FixtureImageSpec } from '../harness/fixtures.js';
import { startProxy, type TestProxy } from '../harness/proxy.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';

export const ROOT = process.env.KP_ROOT ?? process.cwd();
export const BIN = join(ROOT, 'bin', 'kubeprepare.js');

/** Long repository names, so that the terminal view has to fit them to its width. */
export const REFS = ['a', 'b', 'c'].map((k) => `docker.io/kubeedge/progress-view-fixture-with-a-long-name-${k}:1.0`);

/** Three single-platform images of about 2 MB each (two layers), unique blobs, behind a slow proxy. */
const SPECS: FixtureImageSpec[] = ['a', 'b', 'c'].map((k) => ({
  repo: `kubeedge/progress-view-fixture-with-a-long-name-${k}`,
  tag: '1.0',
  format: 'oci',
  platforms: ['linux/amd64'],
  layers: [`progress-${k}-1`, `progress-${k}-2`],
  layerKb: 1024,
}));

export interface ProgressWorld {
  work: string;
  proxy: TestProxy;
  /** Size of each image of REFS (config + layers, as the registry serves them). */
  sizes: number[];
  /** Arguments for `images` of REFS into `out` with a fresh cache. */
  imagesArgs(out: string, extra?: string[]): string[];
  stop(): Promise<void>;
}

/** A registry with the images above, reached through a proxy sending `bytesPerSecond` per connection. */
export async function startProgressWorld(bytesPerSecond: number): Promise<ProgressWorld> {
  const work = await mkdtemp(join(tmpdir(), 'kp-progress-'));
  const registry: TestRegistry = await startRegistry();
  let proxy: TestProxy | undefined;
  let sizes: number[];
  try {
    const fx = await pushFixtureSet(registry.url, SPECS);
    sizes = fx.images.map((i) => i.platforms[0]!).map((p) => p.config.size + p.layers.reduce((n, l) => n + l.size, 0));
    proxy = await startProxy(registry.url, { bytesPerSecond });
    await writeFile(join(work, 'registries.yaml'), `mirrors:\n  docker.io:\n    endpoint: ["${proxy.url}"]\n`);
  } catch (e) {
    await proxy?.close();
    await registry.stop();
    throw e;
  }
  let n = 0;
  const p = proxy;
  return {
    work,
    proxy: p,
    sizes,
    imagesArgs: (out, extra = []) => ['images', '--arch', 'amd64', '--out', out, '--cache-dir', join(work, `cache-${++n}`), '--registries', join(work, 'registries.yaml'), ...extra, ...REFS],
    async stop() {
      await p.close();
      await registry.stop();
      await rm(work, { recursive: true, force: true });
    },
  };
}

/** Runs the built CLI (dist/) without a terminal; resolves with its exit code and output. */
export function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

/** The environment of a CLI run: offline (loopback mirrors only), without a CI variable unless given. */
export function cliEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, KP_OFFLINE: '1', ...extra };
  if (!('CI' in extra)) delete env.CI;
  return env;
}
