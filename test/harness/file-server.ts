import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A loopback HTTP server serving in-memory files, standing in for GitHub release downloads in tests.
 * Counts requests per path, honours `Range: bytes=N-`, and can inject faults (a status for the next
 * requests, or a connection dropped after N bytes).
 */
export interface FileServer {
  url: string;
  files: Map<string, Buffer>;
  requests: { method: string; path: string; range?: string }[];
  count(path?: string): number;
  /** The next `times` requests for `path` answer `status`. */
  failNext(path: string, status: number, times?: number): void;
  /** The next request for `path` sends `bytes` bytes of the body and then destroys the socket. */
  dropAfter(path: string, bytes: number): void;
  /** Requests for `path` get headers and a first chunk, then nothing (until the server stops). */
  hang(path: string): void;
  /** Disables Range support (answers 200 with the whole file). */
  noRange: boolean;
  stop(): Promise<void>;
}

export async function startFileServer(files: Record<string, Buffer | string> = {}): Promise<FileServer> {
  const map = new Map<string, Buffer>(Object.entries(files).map(([k, v]) => [k, Buffer.isBuffer(v) ? v : Buffer.from(v)]));
  const failures = new Map<string, { status: number; times: number }>();
  const drops = new Map<string, number>();
  const hangs = new Set<string>();
  const requests: FileServer['requests'] = [];
  const state = { noRange: false };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push({ method: req.method ?? 'GET', path, ...(req.headers.range ? { range: req.headers.range } : {}) });
    const f = failures.get(path);
    if (f && f.times > 0) {
      f.times--;
      res.writeHead(f.status, f.status === 429 ? { 'retry-after': '0' } : {});
      res.end('injected failure');
      return;
    }
    const body = map.get(path);
    if (!body) {
      res.writeHead(404);
      res.end('not found');
      return;
    }
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m && !state.noRange) {
      start = Number(m[1]);
      if (start >= body.length) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` });
        res.end();
        return;
      }
      res.writeHead(206, { 'content-length': body.length - start, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}`, 'accept-ranges': 'bytes' });
    } else {
      res.writeHead(200, { 'content-length': body.length, 'accept-ranges': 'bytes' });
    }
    if (hangs.has(path)) {
      res.write(body.subarray(start, start + 1024));
      return;
    }
    const drop = drops.get(path);
    if (drop !== undefined) {
      drops.delete(path);
      res.write(body.subarray(start, start + drop), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(body.subarray(start));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    files: map,
    requests,
    count: (path?: string) => requests.filter((r) => !path || r.path === path).length,
    failNext: (path, status, times = 1) => failures.set(path, { status, times }),
    dropAfter: (path, bytes) => drops.set(path, bytes),
    hang: (path) => hangs.add(path),
    get noRange() {
      return state.noRange;
    },
    set noRange(v: boolean) {
      state.noRange = v;
    },
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
