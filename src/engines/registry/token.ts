import { UserError } from '../../errors.js';
import { debug, safeUrl } from '../../util/debug.js';
import type { Credential } from '../../oci/credentials.js';
import { isRetryableNetworkError, isRetryableStatus, retryDelayMs, sleep, type RetryOptions } from '../../util/retry.js';
import { basicHeader } from './challenge.js';
import { RegistryAuthError, summarize } from './errors.js';
import { checkHostAllowed, drain, readBody, sendWithBody, type AgentPool } from './http.js';
import type { Endpoint } from './mirrors.js';

export interface TokenServiceOptions {
  pool: AgentPool;
  retry: RetryOptions;
  /** Refuse a token realm on a non-loopback host. */
  offline?: boolean | undefined;
  userAgent?: string | undefined;
  timeoutMs?: number | undefined;
}

/** One bearer token asked of the token service `realm` names (a Bearer challenge of `ep`). */
export interface TokenRequest {
  ep: Endpoint;
  realm: string;
  service: string | undefined;
  scope: string;
  cred: Credential | undefined;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/**
 * Bearer tokens from registries' token services, cached per (host, realm, service, scope) and used
 * until 5 s before they expire; one fetch at a time per key, a failed fetch is not cached.
 */
export class TokenCache {
  private readonly tokens = new Map<string, Promise<CachedToken>>();

  constructor(private readonly opts: TokenServiceOptions) {}

  /** The `Authorization` header value (`Bearer …`); `forceRefresh` skips the cache (the token was refused). */
  async bearer(t: TokenRequest, forceRefresh: boolean, signal?: AbortSignal): Promise<string> {
    const key = `${t.ep.host}|${t.realm}|${t.service ?? ''}|${t.scope}`;
    const cached = this.tokens.get(key);
    if (cached && !forceRefresh) {
      try {
        const c = await cached;
        if (c.expiresAt > Date.now() + 5_000) return `Bearer ${c.token}`;
      } catch {
        // fall through to a new fetch
      }
    }
    const p = fetchToken(this.opts, t, signal);
    this.tokens.set(key, p);
    p.catch(() => {
      if (this.tokens.get(key) === p) this.tokens.delete(key);
    });
    return `Bearer ${(await p).token}`;
  }
}

/** Asks the token service, with bounded retries for retryable statuses and dropped connections. */
async function fetchToken(opts: TokenServiceOptions, t: TokenRequest, signal?: AbortSignal): Promise<CachedToken> {
  const { url, method, headers, body } = tokenHttpRequest(t, opts.userAgent);
  checkHostAllowed(opts.offline, url, `token service of ${t.ep.host}`);
  debug('auth', `token for ${t.ep.host}: realm ${safeUrl(t.realm)}, service ${t.service ?? '-'}, scope ${t.scope}, ${t.cred ? `credentials from ${t.cred.source}` : 'anonymous'}`);
  let attempt = 0;
  for (;;) {
    attempt++;
    try {
      const res = await sendWithBody(opts.pool, url, method, headers, body, signal, opts.timeoutMs);
      const status = res.statusCode ?? 0;
      if (status === 200) return parseToken(await readBody(res, 1 << 20), url, t);
      const text = await drain(res);
      if (isRetryableStatus(status) && attempt < opts.retry.attempts) {
        debug('retry', `token service ${url.origin}: HTTP ${status}; try ${attempt + 1} of ${opts.retry.attempts}`);
        await sleep(retryDelayMs(opts.retry, attempt, res.headers['retry-after']), signal);
        continue;
      }
      throw tokenRefused(status, text, url, t);
    } catch (e) {
      if (isRetryableNetworkError(e) && attempt < opts.retry.attempts && !signal?.aborted) {
        debug('retry', `token service ${url.origin}: ${(e as Error).message}; try ${attempt + 1} of ${opts.retry.attempts}`);
        await sleep(retryDelayMs(opts.retry, attempt), signal);
        continue;
      }
      throw e;
    }
  }
}

/**
 * The token request: with an identity token the OAuth2 refresh-token grant (a POST form, what Docker
 * does), else a GET with service and scope in the query and Basic credentials when there are any.
 */
function tokenHttpRequest(t: TokenRequest, userAgent: string | undefined): { url: URL; method: string; headers: Record<string, string>; body: string | undefined } {
  let url: URL;
  try {
    url = new URL(t.realm);
  } catch {
    throw UserError.runtime('auth', `registry ${t.ep.host} sent an invalid token realm '${t.realm}'`);
  }
  const headers: Record<string, string> = { 'user-agent': userAgent ?? 'kubeprepare' };
  if (t.cred?.identityToken) {
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: t.cred.identityToken, client_id: 'kubeprepare', scope: t.scope });
    if (t.service) form.set('service', t.service);
    headers['content-type'] = 'application/x-www-form-urlencoded';
    return { url, method: 'POST', headers, body: form.toString() };
  }
  if (t.service) url.searchParams.set('service', t.service);
  url.searchParams.set('scope', t.scope);
  const b = t.cred ? basicHeader(t.cred) : undefined;
  if (b) headers.authorization = b;
  return { url, method: 'GET', headers, body: undefined };
}

/** The token from a 200 answer (`token`, else `access_token`), valid `expires_in` seconds (default 60). */
function parseToken(raw: Buffer, url: URL, t: TokenRequest): CachedToken {
  let j: { token?: string; access_token?: string; expires_in?: number };
  try {
    j = JSON.parse(raw.toString('utf8')) as typeof j;
  } catch {
    throw UserError.runtime('auth', `token service ${url.origin} for ${t.ep.host} returned something that is not JSON`);
  }
  const token = j.token ?? j.access_token;
  if (!token) throw UserError.runtime('auth', `token service ${url.origin} for ${t.ep.host} returned no token`);
  const ttl = typeof j.expires_in === 'number' && j.expires_in > 0 ? j.expires_in : 60;
  debug('auth', `token for ${t.ep.host} (${t.scope}) obtained from ${url.origin}, valid ${ttl}s`);
  return { token, expiresAt: Date.now() + ttl * 1000 };
}

/** The error for a token service's non-200, non-retried answer: 401/403 refuse the credentials (or anonymous access). */
function tokenRefused(status: number, text: string, url: URL, t: TokenRequest): Error {
  const { ep, cred } = t;
  if (status === 401 || status === 403) {
    return new RegistryAuthError(
      `token service ${url.origin} refused ${cred ? `the credentials from ${cred.source}` : 'anonymous access'} for ${t.scope} on ${ep.host} (HTTP ${status})${text ? `: ${summarize(text)}` : ''}`,
      cred ? `check the credentials for ${ep.host}` : `log in with \`docker login ${ep.host}\` or set configs."${ep.host}".auth in registries.yaml`,
    );
  }
  return UserError.runtime('auth', `token service ${url.origin} for ${ep.host} answered HTTP ${status}${text ? `: ${summarize(text)}` : ''}`);
}
