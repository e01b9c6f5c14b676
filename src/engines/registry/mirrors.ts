import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { UserError } from '../../errors.js';
import { parseYamlWithSchema } from '../../util/yaml-schema.js';
import { registriesSchema } from './registries-schema.js';

/**
 * `registries.yaml` as K3s (and containerd's CRI registry config) reads it:
 *
 * ```yaml
 * mirrors:
 *   docker.io:
 *     endpoint: ["http://127.0.0.1:5000", "https://mirror.example.com"]
 *     rewrite: {"^rancher/(.*)": "mirrored/$1"}
 * configs:
 *   "127.0.0.1:5000":
 *     auth: {username: u, password: p}      # or {auth: base64(u:p)} or {token: …} or {identity_token: …}
 *     tls: {insecure_skip_verify: false, ca_file: /x/ca.pem, cert_file: /x/c.pem, key_file: /x/k.pem}
 * ```
 *
 * Semantics (as in K3s): the endpoints of a mirror are tried in order and the registry's own (default)
 * endpoint is tried last. A mirror named `*` applies to every registry without its own entry. `rewrite`
 * rules apply to the repository path when pulling through a mirror endpoint (not the default endpoint).
 * `configs` are looked up by the endpoint's `host[:port]` (then, for the default endpoint, by the
 * registry name; then `*`).
 *
 * Plain `http://` endpoints are allowed for loopback hosts (127.0.0.0/8, ::1, localhost). For any other
 * host, an `http://` endpoint is refused unless `configs."<host[:port]>".tls.insecure_skip_verify` is
 * true: the user has to opt into insecure transport for that host explicitly.
 */
export interface RegistryAuthConfig {
  username?: string;
  password?: string;
  /** base64 of `username:password` (Docker's `auth`). */
  auth?: string;
  /** A static bearer token sent as-is. */
  token?: string;
  /** An OAuth2 refresh token exchanged at the token endpoint (Docker's `identitytoken`). */
  identityToken?: string;
}

export interface RegistryTlsConfig {
  insecureSkipVerify?: boolean;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

export interface RegistryHostConfig {
  auth?: RegistryAuthConfig;
  tls?: RegistryTlsConfig;
}

export interface RewriteRule {
  pattern: RegExp;
  replacement: string;
}

export interface MirrorConfig {
  endpoints: string[];
  rewrite: RewriteRule[];
}

export interface RegistriesConfig {
  /** The file it was read from, for messages. */
  file?: string;
  mirrors: Record<string, MirrorConfig>;
  configs: Record<string, RegistryHostConfig>;
}

export const emptyRegistriesConfig = (): RegistriesConfig => ({ mirrors: {}, configs: {} });

/** Reads and validates a registries.yaml. Every problem is a UserError naming the file and the key. */
export async function loadRegistriesConfig(path: string): Promise<RegistriesConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read registries config ${path}: ${(e as Error).message}`, {
      code: 'input',
      hint: 'pass the path of a K3s-style registries.yaml',
      cause: e,
    });
  }
  return parseRegistriesConfig(text, path);
}

/**
 * Parses and validates registries.yaml text (`file` is shown in messages): every problem is reported
 * as `file:line:col: key.path: message`, all at once, as one UserError.
 */
export function parseRegistriesConfig(text: string, file = 'registries.yaml'): RegistriesConfig {
  const parsed = parseYamlWithSchema(text, file, registriesSchema, {
    code: 'input',
    hint: 'see the K3s registries.yaml format: mirrors.<registry>.endpoint/rewrite, configs.<host>.auth/tls',
    schemaMessages: true,
    quoteKeys: true,
  });
  return { file, mirrors: parsed.mirrors ?? {}, configs: parsed.configs ?? {} };
}

/** One place an image can be pulled from. */
export interface Endpoint {
  /** Base URL of the API, ending in `/v2` (e.g. `http://127.0.0.1:5000/v2`). */
  apiBase: string;
  /** `host[:port]` of the endpoint. */
  host: string;
  /** Repository path to ask this endpoint for (rewrites applied). */
  repository: string;
  /** True for the registry's own endpoint (the fallback after mirrors). */
  isDefault: boolean;
  hostConfig: RegistryHostConfig | undefined;
}

export interface ResolveOptions {
  /** Forbid every non-loopback host (tests, air-gapped builds). */
  offline?: boolean;
  /** Do not add the registry's own endpoint after the mirror endpoints (K3s' disable-default-registry-endpoint). */
  noUpstreamFallback?: boolean;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1';
  return false;
}

/** `docker.io` → `registry-1.docker.io`; other registries are their own host. */
export function defaultEndpointUrl(registry: string): string {
  if (registry === 'docker.io') return 'https://registry-1.docker.io';
  const hostname = new URL(`http://${registry}`).hostname;
  // Like Docker, a registry on a loopback address is spoken to over plain HTTP.
  return isLoopbackHost(hostname) ? `http://${registry}` : `https://${registry}`;
}

/**
 * The endpoints to try, in order, for `registry/repository`. Throws a UserError when the configuration
 * leaves none (e.g. offline with only non-loopback endpoints) or lists an insecure endpoint.
 */
export function resolveEndpoints(cfg: RegistriesConfig, registry: string, repository: string, opts: ResolveOptions = {}): Endpoint[] {
  const mirror = cfg.mirrors[registry] ?? cfg.mirrors['*'];
  const out: Endpoint[] = [];
  const skipped: string[] = [];
  const candidates: { url: string; isDefault: boolean }[] = (mirror?.endpoints ?? []).map((url) => ({ url, isDefault: false }));
  const defaultUrl = defaultEndpointUrl(registry);
  if (!opts.noUpstreamFallback && !candidates.some((c) => sameOrigin(c.url, defaultUrl))) {
    candidates.push({ url: defaultUrl, isDefault: true });
  }
  for (const c of candidates) {
    const u = new URL(c.url);
    const host = u.host;
    if (opts.offline && !isLoopbackHost(u.hostname)) {
      skipped.push(c.url);
      continue;
    }
    const hostConfig = cfg.configs[host] ?? (c.isDefault ? cfg.configs[registry] : undefined) ?? cfg.configs['*'];
    if (u.protocol === 'http:' && !isLoopbackHost(u.hostname) && !hostConfig?.tls?.insecureSkipVerify) {
      throw new UserError(`${cfg.file ?? 'registries.yaml'}: endpoint ${c.url} for ${registry} uses plain HTTP to a non-loopback host`, {
        code: 'input',
        hint: `use https://, or opt into insecure transport with configs."${host}".tls.insecure_skip_verify: true`,
      });
    }
    let repo = repository;
    if (!c.isDefault && mirror) {
      for (const rule of mirror.rewrite) {
        if (rule.pattern.test(repository)) {
          repo = repository.replace(rule.pattern, rule.replacement);
          break;
        }
      }
    }
    let path = u.pathname.replace(/\/+$/, '');
    if (!path.endsWith('/v2')) path = `${path}/v2`;
    out.push({ apiBase: `${u.protocol}//${host}${path}`, host, repository: repo, isDefault: c.isDefault, hostConfig });
  }
  if (out.length === 0) {
    throw new UserError(`no usable endpoint for registry ${registry}: offline mode forbids ${skipped.join(', ') || 'every endpoint'}`, {
      code: 'offline',
      hint: `add a loopback mirror for ${registry} to registries.yaml (mirrors."${registry}".endpoint), or build without offline mode (KP_OFFLINE unset)`,
    });
  }
  return out;
}

function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}
