// The blob transport of the registry engine (src/engines/registry/fast-http.ts) against node's own HTTP
// server: every framing a server may answer with, keep-alive reuse (and a kept connection the server
// closed), reused read buffers handed out and given back, back-pressure, abort and timeout.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net, { type AddressInfo, type Socket } from 'node:net';
import { FastPool, type HttpResponse } from '../../src/engines/registry/fast-http.js';

const BIG = randomBytes(5 * (1 << 20) + 17);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
let server: http.Server;
let base: string;
const sockets = new Set<Socket>();
let connections = 0;
let hold: (() => void) | undefined;

before(async () => {
  server = http.createServer((req, res) => {
    const u = new URL(req.url!, 'http://x');
    switch (u.pathname) {
      case '/length':
        res.writeHead(200, { 'content-length': String(BIG.length) });
        res.end(BIG);
        return;
      case '/chunked': {
        res.writeHead(200, { 'content-type': 'application/octet-stream' }); // no length: node chunks it
        let off = 0;
        const step = () => {
          if (off >= BIG.length) return res.end();
          const n = Math.min(BIG.length - off, 70_001);
          res.write(BIG.subarray(off, off + n));
          off += n;
          setImmediate(step);
        };
        step();
        return;
      }
      case '/close': {
        // HTTP/1.0-style, written on the socket itself (node's server would chunk it): no length, the
        // body ends with the connection.
        const sock = res.socket!;
        sock.write('HTTP/1.0 200 OK\r\ncontent-type: application/octet-stream\r\n\r\n');
        sock.write(BIG.subarray(0, 300_000));
        sock.end();
        return;
      }
      case '/empty':
        res.writeHead(204);
        res.end();
        return;
      case '/status':
        res.writeHead(Number(u.searchParams.get('s')), { 'content-type': 'application/json', 'www-authenticate': 'Bearer realm="a"' });
        res.end('{"errors":[]}');
        return;
      case '/trickle': {
        // A slow server: 3000 writes of 700 bytes (each read small), as a throttling proxy sends them.
        res.writeHead(200, { 'content-length': String(3000 * 700) });
        let k = 0;
        const step = () => {
          if (k === 3000) return res.end();
          res.write(BIG.subarray(k * 700, ++k * 700));
          if (k % 50 === 0) setTimeout(step, 1);
          else step();
        };
        step();
        return;
      }
      case '/hang':
        hold = () => res.end('late');
        return;
      case '/headers':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(req.headers));
        return;
    }
    res.writeHead(404);
    res.end();
  });
  server.on('connection', (s) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  hold?.();
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
});

async function body(res: HttpResponse): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of res) parts.push(typeof c === 'string' ? Buffer.from(c) : c);
  return Buffer.concat(parts);
}

test('reads Content-Length, chunked, read-until-close and empty bodies; complete only when whole', async () => {
  const pool = new FastPool();
  try {
    for (const path of ['/length', '/chunked']) {
      const res = await pool.get(new URL(`${base}${path}`), { headers: {} });
      assert.equal(res.statusCode, 200);
      assert.equal(sha(await body(res)), sha(BIG), path);
      assert.equal(res.complete, true, path);
    }
    const closed = await pool.get(new URL(`${base}/close`), { headers: {} });
    assert.ok((await body(closed)).equals(BIG.subarray(0, 300_000)));
    assert.equal(closed.complete, true);
    const empty = await pool.get(new URL(`${base}/empty`), { headers: {} });
    assert.equal(empty.statusCode, 204);
    assert.equal((await body(empty)).length, 0);
    const e = await pool.get(new URL(`${base}/status?s=401`), { headers: {} });
    assert.equal(e.statusCode, 401);
    assert.equal(e.headers['www-authenticate'], 'Bearer realm="a"');
    assert.equal((await body(e)).toString(), '{"errors":[]}');
  } finally {
    pool.close();
  }
});

test('sends our headers and asks for no content coding; reuses a kept-alive connection', async () => {
  const pool = new FastPool();
  try {
    const before = connections;
    for (let i = 0; i < 3; i++) {
      const res = await pool.get(new URL(`${base}/headers`), { headers: { authorization: 'Bearer t', range: 'bytes=5-' } });
      const h = JSON.parse((await body(res)).toString()) as Record<string, string>;
      assert.equal(h.authorization, 'Bearer t');
      assert.equal(h.range, 'bytes=5-');
      assert.equal(h['accept-encoding'], 'identity');
    }
    assert.equal(connections - before, 1, 'three requests in a row, one connection');
    // The server closes the idle connection: the next request goes over a new one, transparently.
    for (const s of sockets) s.destroy();
    await new Promise((r) => setTimeout(r, 50));
    const res = await pool.get(new URL(`${base}/length`), { headers: {} });
    assert.equal(sha(await body(res)), sha(BIG));
  } finally {
    pool.close();
  }
});

test('pooled chunks are the connection\'s read buffers: reading pauses while all are held and goes on when given back', async () => {
  const pool = new FastPool();
  try {
    const res = await pool.get(new URL(`${base}/length`), { headers: {} });
    const giveBack = res.usePooledChunks!();
    const held: Buffer[] = [];
    const got: Buffer[] = [];
    let paused = false;
    const it = res[Symbol.asyncIterator]();
    let pending = it.next();
    for (;;) {
      const next = await Promise.race([pending, new Promise<'stalled'>((r) => setTimeout(() => r('stalled'), 300))]);
      if (next === 'stalled') {
        // Every read buffer holds bytes not given back: nothing more arrives until one is.
        paused = true;
        assert.ok(held.length > 0);
        for (const b of held.splice(0)) giveBack(b);
        continue; // the same next() goes on once reading resumed
      }
      if (next.done) break;
      const b = next.value as Buffer;
      got.push(Buffer.from(b)); // the bytes as they were when handed out
      held.push(b);
      pending = it.next();
    }
    assert.ok(paused, 'reading never paused although no buffer was given back');
    assert.equal(sha(Buffer.concat(got)), sha(BIG));
    for (const b of held) giveBack(b);
  } finally {
    pool.close();
  }
});

test('an abort or a silent server ends the request with an error, never a hang', async () => {
  const pool = new FastPool();
  try {
    const ac = new AbortController();
    const p = pool.get(new URL(`${base}/hang`), { headers: {}, signal: ac.signal });
    setTimeout(() => ac.abort(new Error('stop now')), 50);
    await assert.rejects(p, /stop now/);
    hold?.();
    await assert.rejects(pool.get(new URL(`${base}/hang`), { headers: {}, timeoutMs: 200 }), (e: unknown) => (e as NodeJS.ErrnoException).code === 'ETIMEDOUT');
    hold?.();
    await assert.rejects(pool.get(new URL('http://127.0.0.1:1/x'), { headers: {} }), (e: unknown) => (e as NodeJS.ErrnoException).code === 'ECONNREFUSED');
    // Aborted while the connection is still being made (a TLS handshake the server never answers): the
    // destroyed socket emits neither 'connect' nor 'error', and the request must fail, not wait forever
    // (it did: a build whose cache filled up ended with exit 13, an unsettled top-level await).
    const silent = net.createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const ac2 = new AbortController();
      const p2 = pool.get(new URL(`https://127.0.0.1:${(silent.address() as AddressInfo).port}/x`), { headers: {}, signal: ac2.signal, tls: { key: 'x', options: { rejectUnauthorized: false } } });
      setTimeout(() => ac2.abort(new Error('stopped while connecting')), 50);
      const outcome = await Promise.race([p2.then(() => 'resolved', (e: Error) => e.message), new Promise((r) => setTimeout(() => r('hung'), 3000))]);
      assert.equal(outcome, 'stopped while connecting');
      // And a pool closed under a request that is connecting fails it too.
      const p3 = pool.get(new URL(`https://127.0.0.1:${(silent.address() as AddressInfo).port}/y`), { headers: {}, tls: { key: 'x', options: { rejectUnauthorized: false } } });
      setTimeout(() => pool.close(), 50);
      const closed = await Promise.race([p3.then(() => 'resolved', (e: Error) => e.message), new Promise((r) => setTimeout(() => r('hung'), 3000))]);
      assert.match(String(closed), /closed/);
    } finally {
      silent.close();
    }
  } finally {
    pool.close();
  }
});

test('over TLS: the server verified against the configured CA (refused without it), the body intact through reused buffers', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kp-fast-tls-'));
  const key = join(dir, 'k.pem');
  const cert = join(dir, 'c.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const srv = https.createServer({ key: await readFile(key), cert: await readFile(cert) }, (req, res) => {
    res.writeHead(200, { 'content-length': String(BIG.length) });
    res.end(BIG);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const url = new URL(`https://127.0.0.1:${(srv.address() as AddressInfo).port}/blob`);
  const pool = new FastPool();
  try {
    await assert.rejects(pool.get(url, { headers: {} }), (e: unknown) => /self[- ]signed|unable to verify/i.test((e as Error).message));
    const res = await pool.get(url, { headers: {}, tls: { key: 'ca', options: { ca: await readFile(cert) } } });
    const giveBack = res.usePooledChunks!();
    const h = createHash('sha256');
    for await (const c of res) {
      h.update(c as Buffer);
      giveBack(c as Buffer);
    }
    assert.equal(h.digest('hex'), sha(BIG));
    const skip = await pool.get(url, { headers: {}, tls: { key: 'insecure', options: { rejectUnauthorized: false } } });
    assert.equal(sha(await body(skip)), sha(BIG));
  } finally {
    pool.close();
    await new Promise((r) => srv.close(r));
    await rm(dir, { recursive: true, force: true });
  }
});

test('small reads come as copies: a consumer that gives chunks back only per 512 KiB written never stalls', async () => {
  const pool = new FastPool();
  try {
    const res = await pool.get(new URL(`${base}/trickle`), { headers: {} });
    const giveBack = res.usePooledChunks!();
    const held: Buffer[] = [];
    let heldBytes = 0;
    const h = createHash('sha256');
    const done = (async () => {
      for await (const c of res) {
        h.update(c as Buffer);
        held.push(c as Buffer);
        heldBytes += (c as Buffer).length;
        // The blob cache's way: it writes (and gives back) once it holds a batch of 512 KiB.
        if (heldBytes >= 512 << 10) {
          for (const b of held.splice(0)) giveBack(b);
          heldBytes = 0;
        }
      }
      return 'done';
    })();
    assert.equal(await Promise.race([done, new Promise((r) => setTimeout(() => r('stalled'), 10_000))]), 'done');
    assert.equal(h.digest('hex'), sha(BIG.subarray(0, 3000 * 700)));
  } finally {
    pool.close();
  }
});
