import { UserError } from '../../errors.js';
import { debug, safeUrl } from '../../util/debug.js';
import type { CredentialStore } from '../../oci/credentials.js';
import { basicHeader, parseWwwAuthenticate, type Challenge } from './challenge.js';
import type { Endpoint, RegistryTlsConfig } from './mirrors.js';
import { DEFAULT_RETRY, isRetryableNetworkError, isRetryableStatus, retryDelayMs, sleep, type RetryOptions } from '../../util/retry.js';
import { AgentPool, checkHostAllowed, drain, readBody, send } from './http.js';
import type { HttpResponse } from './fast-http.js';
import { RegistryAuthError, RegistryHttpError, summarize } from './errors.js';
import { TokenCache } from './token.js';

export interface RegistryClientOptions {
  credentials: CredentialStore;
  /** Refuse any non-loopback host (endpoints, token realms, redirect targets). */
  offline?: boolean;
  retry?: Partial<RetryOptions>;
  userAgent?: string;
  /** Socket idle timeout per request. */
  timeoutMs?: number;
}

export interface GetOptions {
  accept?: string;
  /** Ask for bytes from this offset on (`Range: bytes=N-`). */
  rangeStart?: number;
  signal?: AbortSignal | undefined;
  /** `HEAD` instead of `GET`. */
  head?: boolean;
  /** A blob body: read through the reused-buffer transport (fast-http.ts). */
  blob?: boolean;
}

const MAX_REDIRECTS = 5;

/**
 * Registry HTTP API v2 client: bearer/basic auth with a token cache per (host, scope), manual redirects
 * that drop `Authorization` when they leave the endpoint's origin, and bounded retries with backoff for
 * 429 (Retry-After), 5xx and dropped connections.
 */
export class RegistryClient {
  readonly retry: RetryOptions;
  private readonly opts: RegistryClientOptions;
  private readonly pool = new AgentPool();
  private readonly challenges = new Map<string, Challenge>();
  private readonly tokens: TokenCache;

  constructor(opts: RegistryClientOptions) {
    this.opts = opts;
    this.retry = { ...DEFAULT_RETRY, ...(opts.retry ?? {}) };
    this.tokens = new TokenCache({ pool: this.pool, retry: this.retry, offline: opts.offline, userAgent: opts.userAgent, timeoutMs: opts.timeoutMs });
  }

  close(): void {
    this.pool.destroy();
  }

  /**
   * GET `<apiBase><path>` and resolve with a 2xx response (body unread). Non-success statuses become
   * RegistryHttpError (after retries for the retryable ones); auth failures become UserErrors.
   */
  async get(ep: Endpoint, registry: string, path: string, opts: GetOptions = {}): Promise<HttpResponse> {
    const scope = `repository:${ep.repository}:pull`;
    let attempt = 0;
    for (;;) {
      attempt++;
      try {
        const res = await this.getOnce(ep, registry, path, scope, opts);
        if (res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300) return res;
        const status = res.statusCode ?? 0;
        const retryAfter = res.headers['retry-after'];
        const body = await drain(res);
        const err = new RegistryHttpError(status, `${ep.apiBase}${path}`, body);
        if (isRetryableStatus(status) && attempt < this.retry.attempts) {
          debug('retry', `GET ${ep.apiBase}${path}: HTTP ${status}; try ${attempt + 1} of ${this.retry.attempts}`);
          await sleep(retryDelayMs(this.retry, attempt, status === 429 || status === 503 ? retryAfter : undefined), opts.signal);
          continue;
        }
        throw err;
      } catch (e) {
        if (isRetryableNetworkError(e) && attempt < this.retry.attempts && !opts.signal?.aborted) {
          debug('retry', `GET ${ep.apiBase}${path}: ${(e as Error).message}; try ${attempt + 1} of ${this.retry.attempts}`);
          await sleep(retryDelayMs(this.retry, attempt), opts.signal);
          continue;
        }
        throw e;
      }
    }
  }

  /** Reads a small body fully (manifests), with the same retries for a body cut short. */
  async getBuffer(ep: Endpoint, registry: string, path: string, opts: GetOptions & { limit: number }): Promise<{ body: Buffer; res: HttpResponse }> {
    let attempt = 0;
    for (;;) {
      attempt++;
      const res = await this.get(ep, registry, path, opts);
      try {
        return { body: await readBody(res, opts.limit), res };
      } catch (e) {
        if (isRetryableNetworkError(e) && attempt < this.retry.attempts && !opts.signal?.aborted) {
          debug('retry', `GET ${ep.apiBase}${path}: body cut short (${(e as Error).message}); try ${attempt + 1} of ${this.retry.attempts}`);
          await sleep(retryDelayMs(this.retry, attempt), opts.signal);
          continue;
        }
        throw e;
      }
    }
  }

  /** One logical try: auth round trips and redirects, no retries. */
  private async getOnce(ep: Endpoint, registry: string, path: string, scope: string, opts: GetOptions): Promise<HttpResponse> {
    const origin = new URL(ep.apiBase).origin;
    let forceRefresh = false;
    for (let authRound = 0; ; authRound++) {
      const auth = await this.authorization(ep, registry, scope, forceRefresh, opts.signal);
      let url = new URL(`${ep.apiBase}${path}`);
      const headers: Record<string, string> = {
        'user-agent': this.opts.userAgent ?? 'kubeprepare',
      };
      if (opts.accept) headers.accept = opts.accept;
      if (opts.rangeStart !== undefined && opts.rangeStart > 0) headers.range = `bytes=${opts.rangeStart}-`;
      let res: HttpResponse | undefined;
      for (let hop = 0; ; hop++) {
        const h = { ...headers };
        // Credentials go only to the endpoint's own origin, never to a redirect target elsewhere.
        if (auth && url.origin === origin) h.authorization = auth;
        checkHostAllowed(this.opts.offline, url, `${ep.apiBase}${path}`);
        res = await this.send(url, h, url.origin === origin ? ep.hostConfig?.tls : undefined, opts);
        const status = res.statusCode ?? 0;
        if ([301, 302, 303, 307, 308].includes(status) && res.headers.location) {
          await drain(res);
          if (hop >= MAX_REDIRECTS) throw UserError.runtime('registry', `too many redirects fetching ${ep.apiBase}${path}`, 'check the registry or mirror configuration');
          url = new URL(res.headers.location, url);
          continue;
        }
        break;
      }
      if (res.statusCode !== 401) return res;
      const challenges = parseWwwAuthenticate(res.headers['www-authenticate']);
      const body = await drain(res);
      const ch = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
      if (ch) this.challenges.set(ep.host, ch);
      if (authRound >= 2 || !ch) {
        throw await this.unauthorized(ep, registry, body);
      }
      // A 401 although we sent a (cached) token: fetch a fresh one.
      forceRefresh = auth !== undefined;
      debug('auth', `${ep.host} answered 401 (${ch.scheme} challenge${ch.params.realm ? `, realm ${safeUrl(ch.params.realm)}` : ''})${forceRefresh ? ' to a token: fetching a fresh one' : ''}`);
      if (ch.scheme === 'basic' && auth !== undefined) throw await this.unauthorized(ep, registry, body);
    }
  }

  /** One request: a blob GET through fast-http.ts where it can, everything else through node's client. */
  private async send(url: URL, headers: Record<string, string>, tls: RegistryTlsConfig | undefined, opts: GetOptions): Promise<HttpResponse> {
    const common = { headers, signal: opts.signal, timeoutMs: this.opts.timeoutMs };
    if (opts.blob && !opts.head) return this.pool.fast.get(url, { ...common, ...(url.protocol === 'https:' ? { tls: this.pool.tlsOptions(url, tls) } : {}) });
    return send(this.pool, url, { ...common, method: opts.head ? 'HEAD' : 'GET', tls });
  }

  private async unauthorized(ep: Endpoint, registry: string, body: string): Promise<RegistryAuthError> {
    const cred = await this.opts.credentials.get(ep.host, ep.isDefault ? registry : undefined);
    const where = `${ep.host}${ep.host !== registry ? ` (for ${registry})` : ''}`;
    if (!cred) {
      return new RegistryAuthError(
        `registry ${where} requires authentication for ${ep.repository} (HTTP 401) and no credentials are configured${body ? `: ${summarize(body)}` : ''}`,
        `log in with \`docker login ${ep.host}\` (Docker config.json), or set configs."${ep.host}".auth in registries.yaml`,
      );
    }
    return new RegistryAuthError(
      `registry ${where} rejected the credentials from ${cred.source} for ${ep.repository} (HTTP 401)${body ? `: ${summarize(body)}` : ''}`,
      `check the username/password or token for ${ep.host}`,
    );
  }

  /** The Authorization header for a request to `ep`, or undefined to go anonymous. */
  private async authorization(ep: Endpoint, registry: string, scope: string, forceRefresh: boolean, signal?: AbortSignal): Promise<string | undefined> {
    const ch = this.challenges.get(ep.host);
    if (!ch) return undefined;
    const cred = await this.opts.credentials.get(ep.host, ep.isDefault ? registry : undefined);
    if (ch.scheme === 'basic') {
      const h = cred ? basicHeader(cred) : undefined;
      if (!h) throw await this.unauthorized(ep, registry, '');
      return h;
    }
    if (ch.scheme !== 'bearer') return undefined;
    if (cred?.registryToken) return `Bearer ${cred.registryToken}`;
    const realm = ch.params.realm;
    if (!realm) throw UserError.runtime('auth', `registry ${ep.host} sent a Bearer challenge without a realm`, 'the registry is misconfigured');
    return this.tokens.bearer({ ep, realm, service: ch.params.service, scope, cred }, forceRefresh, signal);
  }
}
