import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { requireBinary, run, startProcess, waitUntil, type ManagedProcess } from './process.js';

const REGISTRY_BIN = '/usr/bin/docker-registry';

export interface TestRegistry {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `127.0.0.1:<port>` */
  host: string;
  port: number;
  /** Storage root (filesystem driver). */
  root: string;
  /** Basic credentials when started with htpasswd auth. */
  auth?: { username: string; password: string };
  /** File holding the blob's bytes in the registry's storage (to tamper with in tests). */
  blobDataPath(digest: string): string;
  /**
   * Started with `accessLog`: every request the registry has served, in order, read from its own access
   * log. A sentinel request (`GET /v2/?kp-sentinel=N`, left out of the result) is sent first and waited
   * for in the log, so that the requests answered before the call are all there.
   */
  served?(): Promise<ServedRequest[]>;
  stop(): Promise<void>;
}

/** One line of the registry's access log. */
export interface ServedRequest {
  method: string;
  /** Path and query as requested. */
  path: string;
  status: number;
}

/**
 * A line of Distribution's access log: with `log.accesslog.disabled: false` the registry wraps its
 * handler in gorilla's CombinedLoggingHandler writing to stdout (distribution registry/registry.go,
 * NewRegistry: `handler = gorhandlers.CombinedLoggingHandler(os.Stdout, handler)`), i.e. Apache's
 * combined format: `127.0.0.1 - - [03/Dec/2026:15:21:14 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"`.
 */
const ACCESS_LINE = /^\S+ \S+ \S+ \[[^\]]+\] "([A-Z]+) (\S+) [^"]*" (\d{3}) /;

export function parseAccessLog(text: string): ServedRequest[] {
  const out: ServedRequest[] = [];
  for (const line of text.split('\n')) {
    const m = ACCESS_LINE.exec(line);
    if (m) out.push({ method: m[1]!, path: m[2]!, status: Number(m[3]) });
  }
  return out;
}

/**
 * Starts Debian's Distribution registry (`docker-registry`) on a free loopback port with filesystem
 * storage in a temp dir; optionally with htpasswd (bcrypt, made with `htpasswd` from apache2-utils).
 */
export async function startRegistry(opts: { auth?: { username: string; password: string }; accessLog?: boolean } = {}): Promise<TestRegistry> {
  requireBinary(REGISTRY_BIN, 'docker-registry');
  const dir = await mkdtemp(join(tmpdir(), 'kp-registry-'));
  const root = join(dir, 'storage');
  const port = await freePort();
  const lines = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    `    disabled: ${opts.accessLog ? 'false' : 'true'}`,
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${root}`,
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '  secret: kubeprepare-test',
  ];
  if (opts.auth) {
    const htpasswd = join(dir, 'htpasswd');
    await writeFile(htpasswd, await bcryptLine(opts.auth.username, opts.auth.password));
    lines.push('auth:', '  htpasswd:', '    realm: kubeprepare-test', `    path: ${htpasswd}`);
  }
  const config = join(dir, 'config.yml');
  await writeFile(config, `${lines.join('\n')}\n`);
  const proc: ManagedProcess = startProcess(REGISTRY_BIN, ['serve', config], { logFile: join(dir, 'registry.log') });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntil(`docker-registry on ${url}`, async () => {
      const r = await fetch(`${url}/v2/`);
      await r.arrayBuffer();
      return r.status === 200 || r.status === 401;
    }, proc);
  } catch (e) {
    await proc.stop();
    throw e;
  }
  return {
    url,
    host: `127.0.0.1:${port}`,
    port,
    root,
    ...(opts.auth ? { auth: opts.auth } : {}),
    blobDataPath(digest: string) {
      const hex = digest.replace(/^sha256:/, '');
      return join(root, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
    },
    ...(opts.accessLog ? { served: () => servedRequests(url, proc) } : {}),
    async stop() {
      await proc.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

let sentinels = 0;

async function servedRequests(url: string, proc: ManagedProcess): Promise<ServedRequest[]> {
  const mark = `/v2/?kp-sentinel=${++sentinels}`;
  await (await fetch(`${url}${mark}`)).arrayBuffer();
  let seen: ServedRequest[] = [];
  await waitUntil(`the sentinel request ${mark} in the access log of ${url}`, async () => {
    seen = parseAccessLog(await readFile(proc.logFile, 'utf8'));
    return seen.some((r) => r.path === mark);
  }, proc, 10_000);
  return seen.filter((r) => !r.path.startsWith('/v2/?kp-sentinel='));
}

/** `user:$2y$…` for an htpasswd file. The registry accepts bcrypt only. */
async function bcryptLine(username: string, password: string): Promise<string> {
  requireBinary('/usr/bin/htpasswd', 'apache2-utils');
  const r = await run('/usr/bin/htpasswd', ['-nbB', username, password]);
  if (r.code !== 0) throw new Error(`htpasswd failed: ${r.stderr}`);
  return r.stdout.trim() + '\n';
}
