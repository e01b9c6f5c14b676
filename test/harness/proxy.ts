import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Transform } from 'node:stream';

/** One request seen by the proxy. */
export interface SeenRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  status: number;
  /** 'manifest' | 'blob' | 'base' | 'other' from the /v2/ path. */
  kind: 'manifest' | 'blob' | 'base' | 'token' | 'other';
  /** Date.now() when the request arrived. */
  at: number;
}

/**
 * What to do with a request: forward it (optionally cutting the response body after some bytes, then
 * dropping the connection), or answer it directly.
 */
export type FaultAction =
  | {
      type: 'forward';
      cutAfterBytes?: number;
      dropRequestHeaders?: string[];
      /**
       * Alters the upstream response body before it is sent (the whole body is read first): flip a
       * byte, replace it. Content-Length follows the new body; upstream's other headers (the registry's
       * Docker-Content-Digest included) are kept, as a tampering mirror would send them.
       */
      alterBody?: (body: Buffer) => Buffer;
    }
  | { type: 'respond'; status: number; headers?: Record<string, string>; body?: string }
  | { type: 'drop' }
  /** Never answer (the request stays open until the client gives up or the proxy is closed). */
  | { type: 'hang' };

export type FaultRule = (req: IncomingMessage, seen: SeenRequest[]) => FaultAction | undefined;

export interface TestProxy {
  url: string;
  host: string;
  requests: SeenRequest[];
  /** Requests of one kind (blob GETs, manifest GETs…). */
  count(kind: SeenRequest['kind'], method?: string): number;
  reset(): void;
  setRule(rule: FaultRule | undefined): void;
  close(): Promise<void>;
}

/**
 * Answers `res` with what the registry at `base` serves for `req` (its status, body, content type and
 * Docker-Content-Digest): for a `handler` that took a request over to decide when it is answered.
 */
export async function answerFromRegistry(base: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const up = await fetch(`${base}${req.url}`, { headers: { accept: String(req.headers.accept ?? '') } });
  const body = Buffer.from(await up.arrayBuffer());
  res.writeHead(up.status, {
    'content-type': up.headers.get('content-type') ?? '',
    'docker-content-digest': up.headers.get('docker-content-digest') ?? '',
    'content-length': String(body.length),
  });
  res.end(body);
}

export function requestKind(path: string): SeenRequest['kind'] {
  const p = path.split('?')[0] ?? '';
  if (/^\/v2\/?$/.test(p)) return 'base';
  if (/\/blobs\/sha256:[a-f0-9]{64}$/.test(p)) return 'blob';
  if (/\/manifests\/[^/]+$/.test(p)) return 'manifest';
  if (p.startsWith('/token')) return 'token';
  return 'other';
}

/**
 * A small HTTP proxy in front of a real registry, on its own loopback port: it counts requests and
 * can inject faults (status codes, Retry-After, cut bodies, dropped connections) through a rule.
 * `handler` can take requests over entirely (token endpoints, redirect targets).
 * `bytesPerSecond` slows every forwarded body down to that rate (per connection), so that a pull takes
 * long enough for progress to show.
 */
export async function startProxy(targetUrl: string, opts: { rule?: FaultRule; handler?: (req: IncomingMessage, res: ServerResponse) => boolean; bytesPerSecond?: number } = {}): Promise<TestProxy> {
  const target = new URL(targetUrl);
  const requests: SeenRequest[] = [];
  let rule = opts.rule;
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const seen: SeenRequest = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, status: 0, kind: requestKind(req.url ?? '/'), at: Date.now() };
    requests.push(seen);
    res.on('finish', () => (seen.status = res.statusCode));
    if (opts.handler?.(req, res)) {
      seen.status = res.statusCode;
      return;
    }
    const action = rule?.(req, requests) ?? { type: 'forward' };
    if (action.type === 'drop') {
      seen.status = -1;
      req.socket.destroy();
      return;
    }
    if (action.type === 'hang') {
      seen.status = -2;
      return;
    }
    if (action.type === 'respond') {
      seen.status = action.status;
      res.writeHead(action.status, { 'content-type': 'application/json', ...(action.headers ?? {}) });
      res.end(action.body ?? '');
      return;
    }
    const headers: http.OutgoingHttpHeaders = { ...req.headers, host: target.host };
    for (const h of action.dropRequestHeaders ?? []) delete headers[h.toLowerCase()];
    req.on('error', () => {});
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (upRes) => {
      upRes.on('error', () => {});
      seen.status = upRes.statusCode ?? 0;
      const outHeaders = { ...upRes.headers };
      // Keep redirects pointing at the proxy so that every request is seen.
      if (typeof outHeaders.location === 'string' && outHeaders.location.startsWith(target.origin)) {
        outHeaders.location = outHeaders.location.replace(target.origin, `http://${req.headers.host}`);
      }
      if (action.alterBody && req.method !== 'HEAD') {
        const alter = action.alterBody;
        const chunks: Buffer[] = [];
        upRes.on('data', (c: Buffer) => chunks.push(c));
        upRes.on('end', () => {
          const body = alter(Buffer.concat(chunks));
          delete outHeaders['transfer-encoding'];
          res.writeHead(upRes.statusCode ?? 502, { ...outHeaders, 'content-length': String(body.length) });
          res.end(body);
        });
        return;
      }
      res.writeHead(upRes.statusCode ?? 502, outHeaders);
      if (action.cutAfterBytes !== undefined) {
        let sent = 0;
        const limit = action.cutAfterBytes;
        upRes.on('data', (c: Buffer) => {
          if (sent >= limit) return;
          const part = c.subarray(0, Math.max(0, limit - sent));
          sent += part.length;
          res.write(part);
          if (sent >= limit) {
            // Flush what was sent, then drop the connection mid-body.
            setTimeout(() => {
              res.socket?.destroy();
              upRes.destroy();
            }, 20);
          }
        });
        upRes.on('end', () => {
          if (sent < limit) res.end();
        });
      } else if (opts.bytesPerSecond) {
        upRes.pipe(throttle(opts.bytesPerSecond)).pipe(res);
      } else {
        upRes.pipe(res);
      }
    });
    up.on('error', (e) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(String(e));
    });
    req.pipe(up);
  });
  server.on('connection', (s) => {
    // Clients (the engine under test) may drop connections at any time: that is not a harness error.
    s.on('error', () => {});
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    requests,
    count(kind, method = 'GET') {
      return requests.filter((r) => r.kind === kind && r.method === method).length;
    },
    reset() {
      requests.length = 0;
    },
    setRule(r) {
      rule = r;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Passes bytes on in 16 KiB pieces, each after the time it takes at `bytesPerSecond`. */
function throttle(bytesPerSecond: number): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      let off = 0;
      const next = () => {
        if (off >= chunk.length) return cb();
        const part = chunk.subarray(off, off + 16384);
        off += part.length;
        this.push(part);
        setTimeout(next, (part.length / bytesPerSecond) * 1000);
      };
      next();
    },
  });
}

/** A copy of `body` with one byte changed (bit 0 flipped) at `at` (negative: from the end); same size. */
export function flipByte(at = 0): (body: Buffer) => Buffer {
  return (body) => {
    const out = Buffer.from(body);
    const i = at < 0 ? out.length + at : at;
    if (i < 0 || i >= out.length) throw new Error(`flipByte: offset ${at} outside a body of ${out.length} bytes`);
    out[i] = out[i]! ^ 0x01;
    return out;
  };
}

/** Another body altogether (any size). */
export function replaceBody(with_: Buffer | string): (body: Buffer) => Buffer {
  return () => (typeof with_ === 'string' ? Buffer.from(with_) : with_);
}

/** A rule: GETs whose path matches `pattern` are forwarded with their body altered by `alter` (the first `times` of them, default all). */
export function alterBodies(pattern: RegExp, alter: (body: Buffer) => Buffer, times = Infinity): FaultRule {
  let n = 0;
  return (req) => {
    if (req.method !== 'GET' || !pattern.test(req.url ?? '') || n >= times) return undefined;
    n++;
    return { type: 'forward', alterBody: alter };
  };
}
