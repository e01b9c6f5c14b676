import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import { UserError } from '../../errors.js';

export interface DaemonAddress {
  /** What we tell the user: `unix:///var/run/docker.sock`, `tcp://10.0.0.5:2375`. */
  display: string;
  options: Docker.DockerOptions;
}

/**
 * Where the daemon is, as the docker CLI decides it: `host` (engine option), else `DOCKER_HOST`
 * (`unix:///path`, `tcp://host:port`, `host:port`), else `/var/run/docker.sock`. TLS for tcp with
 * `DOCKER_TLS_VERIFY=1` (or port 2376), certificates from `DOCKER_CERT_PATH`.
 */
export function daemonAddress(host: string | undefined, env: NodeJS.ProcessEnv = process.env): DaemonAddress {
  const raw = (host ?? env.DOCKER_HOST ?? '').trim();
  if (raw === '') return { display: 'unix:///var/run/docker.sock', options: { socketPath: '/var/run/docker.sock' } };
  if (raw.startsWith('unix://')) {
    const p = raw.slice('unix://'.length) || '/var/run/docker.sock';
    return { display: `unix://${p}`, options: { socketPath: p } };
  }
  if (raw.startsWith('/')) return { display: `unix://${raw}`, options: { socketPath: raw } };
  if (raw.startsWith('ssh://') || raw.startsWith('npipe://')) {
    throw new UserError(`DOCKER_HOST=${raw}: only unix:// and tcp:// daemon addresses are supported by the docker engine`, {
      code: 'input',
      kind: 'runtime',
      hint: 'forward the daemon socket (ssh -L /tmp/docker.sock:/var/run/docker.sock host) and set DOCKER_HOST=unix:///tmp/docker.sock',
    });
  }
  let url: URL;
  try {
    url = new URL(raw.includes('://') ? raw.replace(/^tcp:/, 'http:') : `http://${raw}`);
  } catch {
    throw new UserError(`DOCKER_HOST=${raw} is not a daemon address`, { code: 'input', hint: 'use unix:///var/run/docker.sock or tcp://host:2375' });
  }
  const port = url.port || (env.DOCKER_TLS_VERIFY === '1' ? '2376' : '2375');
  const tls = env.DOCKER_TLS_VERIFY === '1' || port === '2376' || url.protocol === 'https:';
  const options: Docker.DockerOptions = { host: url.hostname.replace(/^\[|\]$/g, ''), port, protocol: tls ? 'https' : 'http' };
  if (tls && env.DOCKER_CERT_PATH) {
    try {
      options.ca = readFileSync(join(env.DOCKER_CERT_PATH, 'ca.pem'));
      options.cert = readFileSync(join(env.DOCKER_CERT_PATH, 'cert.pem'));
      options.key = readFileSync(join(env.DOCKER_CERT_PATH, 'key.pem'));
    } catch (e) {
      throw new UserError(`cannot read the TLS certificates in DOCKER_CERT_PATH=${env.DOCKER_CERT_PATH}: ${(e as Error).message}`, { code: 'input', kind: 'runtime', cause: e });
    }
  }
  return { display: `tcp://${url.host}${tls ? ' (TLS)' : ''}`, options };
}

/** Connects and checks the daemon answers; a clear runtime error (exit 1) naming the address when it does not. */
export async function connectDaemon(addr: DaemonAddress): Promise<{ docker: Docker; version: string; apiVersion: string }> {
  const docker = new Docker({ ...addr.options, timeout: undefined });
  try {
    await docker.ping({ abortSignal: AbortSignal.timeout(15_000) } as never);
    const v = (await docker.version()) as { Version?: string; ApiVersion?: string };
    return { docker, version: v.Version ?? '?', apiVersion: v.ApiVersion ?? '?' };
  } catch (e) {
    throw noDaemon(addr, e);
  }
}

export function noDaemon(addr: DaemonAddress, e: unknown): UserError {
  const err = e as NodeJS.ErrnoException & { statusCode?: number };
  const why = err?.code ? `${err.code}${err.message && !err.message.includes(err.code) ? ` ${err.message}` : ''}` : (err?.message ?? String(e));
  const hint =
    err?.code === 'EACCES'
      ? `no permission on the socket: add your user to the 'docker' group (or run as root), or point DOCKER_HOST at a daemon you can use`
      : 'start the Docker daemon (systemctl start docker), or set DOCKER_HOST to its socket (unix:///var/run/docker.sock) or address (tcp://host:2375); --engine registry needs no daemon';
  return UserError.runtime('docker', `no Docker daemon answers at ${addr.display}: ${why}`, hint, e);
}
