import { readFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { debug } from '../util/debug.js';

/** A registries.yaml `configs.<host>.auth` entry (the shape src/engines/registry/mirrors.ts parses). */
export interface RegistryAuthConfig {
  username?: string | undefined;
  password?: string | undefined;
  auth?: string | undefined;
  token?: string | undefined;
  identityToken?: string | undefined;
}

/** The part of a parsed registries.yaml the credentials read: its file name and `configs.<host>.auth`. */
export interface CredentialConfigs {
  file?: string | undefined;
  configs?: Record<string, { auth?: RegistryAuthConfig | undefined }> | undefined;
}

/** Credentials for one registry host. */
export interface Credential {
  username?: string;
  password?: string;
  /** OAuth2 refresh token (Docker `identitytoken`, or a credential helper answering Username `<token>`). */
  identityToken?: string;
  /** A static bearer token (registries.yaml `auth.token`). */
  registryToken?: string;
  /** Where it came from, for messages. */
  source: string;
}

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string; registrytoken?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

/** `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function defaultDockerConfigPath(): string {
  const dir = process.env.DOCKER_CONFIG;
  return join(dir && dir.length > 0 ? dir : join(homedir(), '.docker'), 'config.json');
}

/** Normalises a docker config `auths` key (`https://index.docker.io/v1/`, `host:5000`, `http://host/v2/`) to `host[:port]`. */
export function normalizeAuthKey(key: string): string {
  let k = key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  k = k.split('/')[0] ?? k;
  k = k.toLowerCase();
  if (k === 'index.docker.io' || k === 'registry-1.docker.io' || k === 'docker.io') return 'docker.io';
  return k;
}

/** The server URL Docker uses with credential helpers for a registry. */
function helperServerUrl(host: string): string {
  return host === 'docker.io' ? 'https://index.docker.io/v1/' : host;
}

/**
 * Looks up credentials: registries.yaml `configs.<host>.auth` first, then the Docker config file
 * (`credHelpers`, `auths`, `credsStore`, in Docker's order). Results are cached per host.
 */
export class CredentialStore {
  private readonly registries: CredentialConfigs | undefined;
  private readonly dockerConfigPath: string;
  private dockerConfig: Promise<DockerConfigFile | undefined> | undefined;
  private readonly cache = new Map<string, Promise<Credential | undefined>>();

  constructor(opts: { registries?: CredentialConfigs; dockerConfigPath?: string }) {
    this.registries = opts.registries;
    this.dockerConfigPath = opts.dockerConfigPath ?? defaultDockerConfigPath();
  }

  /** `host` is the endpoint's host[:port]; `registry` the registry name (for the default endpoint). */
  get(host: string, registry?: string): Promise<Credential | undefined> {
    const key = `${host}|${registry ?? ''}`;
    let p = this.cache.get(key);
    if (!p) {
      p = this.lookup(host, registry);
      p.then((c) => debug('auth', `credentials for ${host}: ${c ? `from ${c.source}` : 'none (anonymous)'}`), () => {});
      this.cache.set(key, p);
    }
    return p;
  }

  private async lookup(host: string, registry?: string): Promise<Credential | undefined> {
    const cfgs = this.registries?.configs ?? {};
    const fromYaml = cfgs[host]?.auth ?? (registry ? cfgs[registry]?.auth : undefined);
    if (fromYaml) return fromRegistriesAuth(fromYaml, `${this.registries?.file ?? 'registries.yaml'} configs."${cfgs[host]?.auth ? host : registry}".auth`);
    const dc = await this.loadDockerConfig();
    if (!dc) return undefined;
    const names = [normalizeAuthKey(host)];
    if (registry && normalizeAuthKey(registry) !== names[0]) names.push(normalizeAuthKey(registry));
    for (const name of names) {
      const helper = Object.entries(dc.credHelpers ?? {}).find(([k]) => normalizeAuthKey(k) === name)?.[1];
      if (helper) return runCredentialHelper(helper, helperServerUrl(name));
      const entry = Object.entries(dc.auths ?? {}).find(([k]) => normalizeAuthKey(k) === name)?.[1];
      if (entry && (entry.auth || entry.username || entry.identitytoken || entry.registrytoken)) {
        const c: Credential = { source: `${this.dockerConfigPath} auths["${name}"]` };
        if (entry.auth) {
          const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
          const i = decoded.indexOf(':');
          if (i < 0) throw new UserError(`${this.dockerConfigPath}: auths entry for ${name} has an 'auth' that is not base64 of "user:password"`, { code: 'auth', hint: 'run `docker login` again or fix the entry' });
          c.username = decoded.slice(0, i);
          c.password = decoded.slice(i + 1);
        } else if (entry.username !== undefined) {
          c.username = entry.username;
          c.password = entry.password ?? '';
        }
        if (entry.identitytoken) c.identityToken = entry.identitytoken;
        if (entry.registrytoken) c.registryToken = entry.registrytoken;
        return c;
      }
      if (dc.credsStore && entry) return runCredentialHelper(dc.credsStore, helperServerUrl(name));
    }
    if (dc.credsStore) {
      // Docker asks the store even without an auths entry; "not found", or a store that is not
      // installed on this machine (a copied config.json), simply means no credentials here.
      return runCredentialHelper(dc.credsStore, helperServerUrl(names[0] ?? host), true, true);
    }
    return undefined;
  }

  private loadDockerConfig(): Promise<DockerConfigFile | undefined> {
    if (!this.dockerConfig) {
      const path = this.dockerConfigPath;
      this.dockerConfig = (async () => {
        let text: string;
        try {
          text = await readFile(path, 'utf8');
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
          throw new UserError(`cannot read Docker config ${path}: ${(e as Error).message}`, { code: 'auth', kind: 'runtime', cause: e });
        }
        try {
          const parsed = JSON.parse(text) as unknown;
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
          return parsed as DockerConfigFile;
        } catch (e) {
          throw new UserError(`Docker config ${path} is not valid JSON: ${(e as Error).message}`, { code: 'auth', hint: 'fix or remove the file', cause: e });
        }
      })();
    }
    return this.dockerConfig;
  }
}

function fromRegistriesAuth(a: RegistryAuthConfig, source: string): Credential {
  const c: Credential = { source };
  if (a.username !== undefined) {
    c.username = a.username;
    c.password = a.password ?? '';
  } else if (a.auth) {
    const decoded = Buffer.from(a.auth, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    c.username = decoded.slice(0, i);
    c.password = decoded.slice(i + 1);
  }
  if (a.token) c.registryToken = a.token;
  if (a.identityToken) c.identityToken = a.identityToken;
  return c;
}

/** Runs `docker-credential-<name> get` with the server URL on stdin (Docker's credential helper protocol). */
export async function runCredentialHelper(name: string, serverUrl: string, notFoundIsUndefined = true, missingIsUndefined = false): Promise<Credential | undefined> {
  const bin = `docker-credential-${name}`;
  const { code, stdout, stderr, spawnError } = await new Promise<{ code: number | null; stdout: string; stderr: string; spawnError?: Error }>((resolve) => {
    let out = '';
    let err = '';
    const child = spawn(bin, ['get'], { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    child.on('error', (e) => resolve({ code: null, stdout: out, stderr: err, spawnError: e }));
    child.on('close', (c) => resolve({ code: c, stdout: out, stderr: err }));
    child.stdin.on('error', () => {});
    child.stdin.end(serverUrl);
  });
  if (spawnError) {
    if (missingIsUndefined && (spawnError as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UserError(`credential helper ${bin} for ${serverUrl} could not be run: ${spawnError.message}`, {
      code: 'auth',
      kind: 'runtime',
      hint: `install ${bin}, or remove it from credsStore/credHelpers in the Docker config`,
      cause: spawnError,
    });
  }
  if (code !== 0) {
    const msg = (stdout + stderr).trim();
    if (notFoundIsUndefined && /credentials not found/i.test(msg)) return undefined;
    throw new UserError(`credential helper ${bin} failed for ${serverUrl} (exit ${code}): ${msg}`, {
      code: 'auth',
      kind: 'runtime',
      hint: `check \`echo ${serverUrl} | ${bin} get\``,
    });
  }
  let parsed: { Username?: string; Secret?: string };
  try {
    parsed = JSON.parse(stdout) as { Username?: string; Secret?: string };
  } catch {
    throw new UserError(`credential helper ${bin} printed something that is not JSON for ${serverUrl}`, { code: 'auth', kind: 'runtime' });
  }
  if (!parsed.Secret) return undefined;
  if (parsed.Username === '<token>') return { identityToken: parsed.Secret, source: `${bin}` };
  return { username: parsed.Username ?? '', password: parsed.Secret, source: bin };
}
