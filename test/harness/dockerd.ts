import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireBinary, run, startProcess, waitUntil } from './process.js';

export interface TestDockerd {
  /** `unix:///…/docker.sock` */
  host: string;
  /** Runs the docker CLI against this daemon (own DOCKER_CONFIG; the real ~/.docker is not touched). */
  docker(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** The same, failing unless the CLI exits 0; its stdout, trimmed. */
  must(args: string[]): Promise<string>;
  /** The image ID (`sha256:…`) `ref` names in the daemon. */
  idOf(ref: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * A private dockerd (Debian docker.io) with data and exec roots in a temp dir, no iptables, no bridge.
 * The docker CLI may be newer than the daemon; it negotiates the API version (DOCKER_API_VERSION can
 * pin it). Stopped by the PID it was started with.
 */
export async function startDockerd(opts: { insecureRegistries?: string[]; registryMirrors?: string[] } = {}): Promise<TestDockerd> {
  requireBinary('/usr/sbin/dockerd', 'docker.io');
  const cli = existsSync('/usr/local/bin/docker') ? '/usr/local/bin/docker' : '/usr/bin/docker';
  requireBinary(cli, 'docker.io');
  // Short paths: the exec root holds unix sockets (108-byte limit).
  const dir = await mkdtemp(join(tmpdir(), 'kpd-'));
  const sock = join(dir, 'docker.sock');
  const host = `unix://${sock}`;
  const cfgDir = join(dir, 'cli-config');
  await mkdir(cfgDir);
  const args = [
    '--iptables=false',
    '--ip6tables=false',
    '--bridge=none',
    '--data-root', join(dir, 'data'),
    '--exec-root', join(dir, 'exec'),
    '-H', host,
    '--pidfile', join(dir, 'docker.pid'),
    ...(opts.insecureRegistries ?? []).flatMap((r) => ['--insecure-registry', r]),
    // docker.io pulls go to these first (http:// mirrors must also be listed as insecure registries).
    ...(opts.registryMirrors ?? []).flatMap((m) => ['--registry-mirror', m]),
  ];
  const proc = startProcess('/usr/sbin/dockerd', args, { logFile: join(dir, 'dockerd.log') });
  const env = { ...process.env, DOCKER_HOST: host, DOCKER_CONFIG: cfgDir };
  const docker = (a: string[]) => run(cli, a, { env, timeoutMs: 180_000 });
  try {
    await waitUntil('dockerd', async () => existsSync(sock) && (await docker(['version'])).code === 0, proc, 60_000);
  } catch (e) {
    await proc.stop();
    throw e;
  }
  const must = async (a: string[]) => {
    const r = await docker(a);
    if (r.code !== 0) throw new Error(`docker ${a.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout.trim();
  };
  return {
    host,
    docker,
    must,
    idOf: (ref) => must(['image', 'inspect', '--format', '{{.Id}}', ref]),
    async stop() {
      await proc.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
