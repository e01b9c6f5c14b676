import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { UserError, abortErrorOf, abortReason } from '../../errors.js';
import { debug, safeUrl, since } from '../../util/debug.js';
import { TransientNetworkError } from '../../util/retry.js';
import { isLoopbackHost, type RegistryTlsConfig } from './mirrors.js';
import { FastPool, type HttpResponse } from './fast-http.js';

export interface SendOptions {
  method?: string;
  headers?: Record<string, string>;
  tls?: RegistryTlsConfig | undefined;
  signal?: AbortSignal | undefined;
  /** Socket idle timeout. */
  timeoutMs?: number;
}

/** Keep-alive agents, one per distinct TLS setting; and the blob transport's connections (fast-http.ts). */
export class AgentPool {
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  private readonly httpsAgents = new Map<string, https.Agent>();
  private readonly tlsByKey = new Map<string, TlsOptions>();
  readonly fast = new FastPool();

  agentFor(url: URL, tls: RegistryTlsConfig | undefined): http.Agent {
    if (url.protocol === 'http:') return this.httpAgent;
    const t = this.tlsOptions(url, tls);
    let a = this.httpsAgents.get(t.key);
    if (!a) {
      a = new https.Agent({ keepAlive: true, maxSockets: 32, ...t.options });
      this.httpsAgents.set(t.key, a);
    }
    return a;
  }

  /** The TLS settings of `tls` (its files read once) and a key naming them. */
  tlsOptions(url: URL, tls: RegistryTlsConfig | undefined): TlsOptions {
    const key = JSON.stringify(tls ?? {});
    let t = this.tlsByKey.get(key);
    if (!t) {
      const options: TlsOptions['options'] = {};
      try {
        if (tls?.caFile) options.ca = readFileSync(tls.caFile);
        if (tls?.certFile) options.cert = readFileSync(tls.certFile);
        if (tls?.keyFile) options.key = readFileSync(tls.keyFile);
      } catch (e) {
        throw new UserError(`cannot read a TLS file configured for ${url.host}: ${(e as Error).message}`, {
          code: 'input',
          hint: 'check ca_file/cert_file/key_file in registries.yaml',
          cause: e,
        });
      }
      if (tls?.insecureSkipVerify) options.rejectUnauthorized = false;
      this.tlsByKey.set(key, (t = { key, options }));
    }
    return t;
  }

  destroy(): void {
    this.httpAgent.destroy();
    for (const a of this.httpsAgents.values()) a.destroy();
    this.httpsAgents.clear();
    this.fast.close();
  }
}

interface TlsOptions {
  key: string;
  options: { ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized?: boolean };
}

/** One HTTP request; resolves with the response head (body not read). Network errors reject. */
export function send(pool: AgentPool, url: URL, opts: SendOptions = {}): Promise<IncomingMessage> {
  const mod = url.protocol === 'https:' ? https : http;
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(abortReason(opts.signal));
      return;
    }
    // The abort signal is wired by hand (not `signal:`): with keep-alive agents Node can leave the
    // listener on a socket that is later reused, so an old abort would kill an unrelated request.
    const req = mod.request(url, {
      method: opts.method ?? 'GET',
      headers: opts.headers ?? {},
      agent: pool.agentFor(url, opts.tls),
    });
    let res: IncomingMessage | undefined;
    const signal = opts.signal;
    const onAbort = () => {
      const err = abortErrorOf(signal);
      if (res) res.destroy(err);
      req.destroy(err);
    };
    const cleanup = () => signal?.removeEventListener('abort', onAbort);
    signal?.addEventListener('abort', onAbort, { once: true });
    const timeout = opts.timeoutMs ?? 60_000;
    req.setTimeout(timeout, () => {
      req.destroy(new TransientNetworkError(`no data from ${url.host} for ${Math.round(timeout / 1000)}s`, 'ETIMEDOUT'));
    });
    req.on('response', (r) => {
      debug('http', `${opts.method ?? 'GET'} ${safeUrl(url)} -> ${r.statusCode}${r.headers['content-length'] ? `, ${r.headers['content-length']} bytes` : ''} (${since(t0)})`);
      res = r;
      r.on('close', cleanup);
      resolve(r);
    });
    req.on('error', (e) => {
      debug('http', `${opts.method ?? 'GET'} ${safeUrl(url)} failed: ${(e as NodeJS.ErrnoException).code ?? e.message} (${since(t0)})`);
      cleanup();
      reject(e);
    });
    req.end();
  });
}

/** A request with a body (the token service's POST form); without one, `send`. */
export function sendWithBody(pool: AgentPool, url: URL, method: string, headers: Record<string, string>, body: string | undefined, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<IncomingMessage> {
  if (body === undefined) return send(pool, url, { method, headers, signal, timeoutMs });
  const { request } = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, agent: pool.agentFor(url, undefined) });
    req.setTimeout(timeoutMs ?? 60_000, () => req.destroy(new Error('timed out')));
    req.on('response', resolve);
    req.on('error', reject);
    req.end(body);
  });
}

/** Offline mode: refuses `url` unless its host is a loopback one (`what` names what it is for). */
export function checkHostAllowed(offline: boolean | undefined, url: URL, what: string): void {
  if (offline && !isLoopbackHost(url.hostname)) {
    throw UserError.runtime('offline', `offline mode: refusing to contact ${url.origin} (${what})`, 'offline builds (KP_OFFLINE=1 or offline: true) only talk to loopback mirrors; configure one in registries.yaml');
  }
}

/** Reads a whole (small) body, refusing more than `limit` bytes. */
export async function readBody(res: HttpResponse, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res) {
    const b = typeof c === 'string' ? Buffer.from(c) : c;
    n += b.length;
    if (n > limit) {
      res.destroy();
      throw new Error(`response larger than ${limit} bytes`);
    }
    chunks.push(b);
  }
  if (!res.complete) throw new TransientNetworkError('connection closed before the response was complete', 'ECONNRESET');
  return Buffer.concat(chunks);
}

/** Reads and discards a body so the connection can be reused (bounded; destroys larger bodies). */
export async function drain(res: HttpResponse): Promise<string> {
  try {
    return (await readBody(res, 64 * 1024)).toString('utf8');
  } catch {
    res.destroy();
    return '';
  }
}
