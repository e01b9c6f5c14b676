import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli.js';
import { captureIo } from '../harness/io.js';
import { pushFixtureSet } from '../harness/fixtures.js';
import { freePort } from '../harness/ports.js';
import { startProxy, type TestProxy } from '../harness/proxy.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';

/**
 * Issue 16 item 4: with KUBEPREPARE_DEBUG=1 (or --verbose) a build says on stderr what it does on the
 * wire - each request and its outcome, retries and why, the fallback from a failing mirror, the token
 * fetch (realm, scope) - and never a password or token. The world: a docker-registry behind a token
 * service that wants Basic credentials (a real registry behind a small front, as registry-auth.test.ts
 * does) and answers the first blob GET with 503; a first mirror nobody listens on.
 */
const CREDS = { username: 'kpdebug', password: 'kp-debug-secret-pw' };

describe('the debug channel (issue 16 item 4)', () => {
  let work: string;
  let reg: TestRegistry;
  let front: TestProxy;
  let deadPort: number;
  const issued: string[] = [];
  let blobGets = 0;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kp-debug-'));
    reg = await startRegistry();
    await pushFixtureSet(reg.url, [{ repo: 'kubeedge/debugme', tag: 'v1', format: 'oci', platforms: ['linux/amd64', 'linux/arm64'], layers: ['d-base', 'd-bin'] }]);
    const basic = `Basic ${Buffer.from(`${CREDS.username}:${CREDS.password}`).toString('base64')}`;
    const handler = (req: IncomingMessage, res: ServerResponse): boolean => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/token') {
        if (req.headers.authorization !== basic) {
          res.writeHead(401).end('{"details":"incorrect username or password"}');
          return true;
        }
        const token = randomBytes(16).toString('hex');
        issued.push(token);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 }));
        return true;
      }
      if (!url.pathname.startsWith('/v2/')) return false;
      const bearer = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      if (!issued.includes(bearer)) {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="${front.url}/token",service="kp-debug",scope="repository:kubeedge/debugme:pull"` }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return true;
      }
      if (req.method === 'GET' && url.pathname.includes('/blobs/') && blobGets++ === 0) {
        res.writeHead(503, { 'retry-after': '0' }).end('busy');
        return true;
      }
      return false;
    };
    front = await startProxy(reg.url, { handler });
    deadPort = await freePort();
  });
  after(async () => {
    await front?.close();
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('KUBEPREPARE_DEBUG=1 shows requests, the retry reason, the mirror fallback and the token fetch, and no secret', async () => {
    const registries = join(work, 'registries.yaml');
    const dead = `http://127.0.0.1:${deadPort}`;
    await writeFile(
      registries,
      `mirrors:\n  docker.io:\n    endpoint: ["${dead}", "${front.url}"]\nconfigs:\n  "${front.host}":\n    auth: {username: ${CREDS.username}, password: ${CREDS.password}}\n`,
    );
    const io = captureIo({ ...process.env, CI: 'true', KUBEPREPARE_DEBUG: '1' });
    const out = join(work, 'debug.tar');
    const code = await runCli(['images', '--quiet', '--arch', 'arm64', '--out', out, '--cache-dir', join(work, 'cache'), '--registries', registries, '--docker-config', join(work, 'none.json'), 'kubeedge/debugme:v1'], io);
    const err = io.errText();
    assert.equal(code, 0, err);
    assert.ok(existsSync(out));
    const lines = err.split('\n').filter((l) => l.startsWith('debug '));
    const has = (re: RegExp, what: string) => assert.ok(lines.some((l) => re.test(l)), `${what}:\n${err}`);
    const host = front.url.replace(/[.]/g, '\\.');
    // the endpoint order, the dead mirror's failure and the fallback to the next one
    has(new RegExp(`^debug mirror: docker\\.io/kubeedge/debugme:v1: endpoints ${dead.replace(/[.]/g, '\\.')}/v2 \\(mirror\\), ${host}/v2 \\(mirror\\)`), 'endpoint order');
    has(new RegExp(`^debug http: GET ${dead.replace(/[.]/g, '\\.')}/v2/kubeedge/debugme/manifests/v1 failed: ECONNREFUSED`), 'the failed request');
    has(new RegExp(`^debug mirror: docker\\.io/kubeedge/debugme:v1: ${dead.replace(/[.]/g, '\\.')}/v2 failed .*falling back to the next endpoint`), 'the fallback');
    // request lines with status, bytes and time
    has(new RegExp(`^debug http: GET ${host}/v2/kubeedge/debugme/manifests/v1 -> 401 .*\\(\\d+ ms\\)$`), 'the challenge');
    has(new RegExp(`^debug http: GET ${host}/v2/kubeedge/debugme/manifests/v1 -> 200, \\d+ bytes \\(\\d+ ms\\)$`), 'the manifest');
    // the token fetch: realm, service, scope and where the credentials come from; its request line
    has(new RegExp(`^debug auth: token for ${front.host.replace(/[.]/g, '\\.')}: realm ${host}/token, service kp-debug, scope repository:kubeedge/debugme:pull, credentials from .*registries\\.yaml configs\\."${front.host.replace(/[.]/g, '\\.')}"\\.auth$`), 'the token fetch');
    has(new RegExp(`^debug http: GET ${host}/token\\?service=kp-debug&scope=repository%3Akubeedge%2Fdebugme%3Apull -> 200`), 'the token request');
    has(/^debug auth: token for .* obtained from .*, valid 300s$/, 'the token obtained');
    // the retry and its reason
    has(new RegExp(`^debug retry: GET ${host}/v2/kubeedge/debugme/blobs/sha256:[a-f0-9]{64}: HTTP 503; try 2 of \\d+$`), 'the retry');
    // never a secret
    assert.ok(issued.length > 0, 'a token was issued');
    for (const secret of [CREDS.password, Buffer.from(`${CREDS.username}:${CREDS.password}`).toString('base64'), ...issued]) {
      assert.ok(!err.includes(secret), `stderr shows a secret (${secret.slice(0, 6)}…)`);
      assert.ok(!io.outText().includes(secret), 'stdout shows a secret');
    }
  });

  it('a second build from the warm cache reports cache hits; without the flag nothing is printed', async () => {
    const registries = join(work, 'registries-front.yaml');
    await writeFile(registries, `mirrors:\n  docker.io:\n    endpoint: ["${front.url}"]\nconfigs:\n  "${front.host}":\n    auth: {username: ${CREDS.username}, password: ${CREDS.password}}\n`);
    const args = (n: number) => ['images', '--quiet', '--arch', 'arm64', '--out', join(work, `warm-${n}.tar`), '--cache-dir', join(work, 'cache'), '--registries', registries, '--docker-config', join(work, 'none.json'), 'kubeedge/debugme:v1'];
    const verbose = captureIo();
    assert.equal(await runCli(['--verbose', ...args(1)], verbose), 0, verbose.errText());
    assert.match(verbose.errText(), /^debug cache: hit: layer sha256:[a-f0-9]{64} of docker\.io\/kubeedge\/debugme:v1$/m);
    assert.match(verbose.errText(), /^debug cache: hit: config sha256:[a-f0-9]{64} of docker\.io\/kubeedge\/debugme:v1$/m);
    const quiet = captureIo();
    assert.equal(await runCli(args(2), quiet), 0, quiet.errText());
    assert.doesNotMatch(quiet.errText(), /^debug /m);
  });
});
