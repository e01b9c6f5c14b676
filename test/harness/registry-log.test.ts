// The registry's own access log as a request counter (bench/six.ts counts blob GETs with it instead of a
// proxy that copies every byte): what it lists is what the real registry served, in order, each request once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pushFixtureSet, standardFixtureSpecs } from './fixtures.js';
import { requestKind } from './proxy.js';
import { parseAccessLog, startRegistry } from './registry.js';

test('parseAccessLog reads Apache combined lines and skips the registry\'s other log lines', () => {
  const text = [
    '127.0.0.1 - - [03/Dec/2026:15:21:14 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"',
    'time="2026-12-03T15:21:14.45Z" level=error msg="response completed with error" http.request.method=HEAD',
    '127.0.0.1 - - [03/Dec/2026:15:21:14 +0000] "HEAD /v2/a/b/blobs/sha256:00 HTTP/1.1" 404 157 "" "curl/7.88.1"',
  ].join('\n');
  assert.deepEqual(parseAccessLog(text), [
    { method: 'GET', path: '/v2/', status: 200 },
    { method: 'HEAD', path: '/v2/a/b/blobs/sha256:00', status: 404 },
  ]);
});

test('a registry started with accessLog lists every request it served since a mark, sentinels left out', async () => {
  const reg = await startRegistry({ accessLog: true });
  try {
    const set = await pushFixtureSet(reg.url, standardFixtureSpecs().slice(2, 3));
    const img = set.images[0]!;
    const before = (await reg.served!()).length;
    assert.ok(before > 0, 'the pushes are in the log');
    const blob = img.platforms[0]!.layers[0]!.digest;
    const url = `${reg.url}/v2/${img.spec.repo}/blobs/${blob}`;
    for (const method of ['GET', 'GET', 'HEAD']) await (await fetch(url, { method })).arrayBuffer();
    await (await fetch(`${reg.url}/v2/${img.spec.repo}/blobs/sha256:${'0'.repeat(64)}`)).arrayBuffer();
    const since = (await reg.served!()).slice(before);
    assert.deepEqual(since.map((q) => [q.method, requestKind(q.path), q.status]), [
      ['GET', 'blob', 200],
      ['GET', 'blob', 200],
      ['HEAD', 'blob', 200],
      ['GET', 'blob', 404],
    ]);
    // Asked again with nothing served in between: the same requests, no sentinel among them.
    assert.equal((await reg.served!()).length, before + 4);
  } finally {
    await reg.stop();
  }
});

test('a registry started without accessLog offers no count', async () => {
  const reg = await startRegistry();
  try {
    assert.equal(reg.served, undefined);
  } finally {
    await reg.stop();
  }
});
