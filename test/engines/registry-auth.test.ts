import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { createRegistryEngine, parseRegistriesConfig, type RegistryEngineOptions } from '../../src/engines/registry/index.js';
import { UserError } from '../../src/errors.js';
import { parseArch } from '../../src/platform.js';
import { pushFixtureSet, type FixtureImageSpec, type FixtureSet } from '../harness/fixtures.js';
import { startProxy, type TestProxy } from '../harness/proxy.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';

const CREDS = { username: 'kpuser', password: 'kp-secret-pw' };
const SPECS: FixtureImageSpec[] = [
  { repo: 'kubeedge/private', tag: 'v1', format: 'oci', platforms: ['linux/amd64', 'linux/arm64'], layers: ['p-base', 'p-bin'] },
  { repo: 'kubeedge/other', tag: 'v2', format: 'docker', platforms: ['linux/arm64'], layers: ['p-base', 'o-bin'] },
];
const IMAGES = ['docker.io/kubeedge/private:v1', 'docker.io/kubeedge/other:v2'];

describe('registry authentication', () => {
  let work: string;
  let n = 0;
  const build = async (opts: RegistryEngineOptions, images = IMAGES) => {
    const e = createRegistryEngine({ offline: true, retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 50 }, ...opts });
    try {
      return await e.archive({ images, platform: parseArch('arm64'), outFile: join(work, `out-${++n}.tar`), cacheDir: join(work, `cache-${n}`), mtime: 0 });
    } finally {
      await e.close();
    }
  };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kp-auth-'));
  });
  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  describe('Basic auth (docker-registry with htpasswd)', () => {
    let reg: TestRegistry;
    let fx: FixtureSet;
    const mirrorYaml = () => `mirrors:\n  docker.io:\n    endpoint: ["${reg.url}"]\n`;

    before(async () => {
      reg = await startRegistry({ auth: CREDS });
      fx = await pushFixtureSet(reg.url, SPECS, { auth: CREDS });
    });
    after(async () => {
      await reg?.stop();
    });

    it('uses credentials from a Docker config.json (auths, base64 auth)', async () => {
      const cfg = join(work, 'docker-config.json');
      const auth = Buffer.from(`${CREDS.username}:${CREDS.password}`).toString('base64');
      await writeFile(cfg, JSON.stringify({ auths: { [`http://${reg.host}/v2/`]: { auth } } }));
      const res = await build({ registries: parseRegistriesConfig(mirrorYaml()), dockerConfigPath: cfg });
      assert.equal(res.images[0]!.configDigest, fx.image('kubeedge/private').platforms[1]!.config.digest);
    });

    it('uses credentials from registries.yaml (username/password and base64 auth)', async () => {
      const missingDockerConfig = join(work, 'no-such-config.json');
      const y1 = `${mirrorYaml()}configs:\n  "${reg.host}":\n    auth:\n      username: ${CREDS.username}\n      password: ${CREDS.password}\n`;
      const r1 = await build({ registries: parseRegistriesConfig(y1), dockerConfigPath: missingDockerConfig });
      assert.equal(r1.images.length, 2);
      const b64 = Buffer.from(`${CREDS.username}:${CREDS.password}`).toString('base64');
      const y2 = `${mirrorYaml()}configs:\n  "${reg.host}":\n    auth:\n      auth: ${b64}\n`;
      const r2 = await build({ registries: parseRegistriesConfig(y2), dockerConfigPath: missingDockerConfig });
      assert.equal(r2.sha256, r1.sha256);
    });

    it('uses a credential helper named in credHelpers (docker-credential-<name> get)', async () => {
      const bin = await mkdtemp(join(work, 'bin-'));
      const helper = join(bin, 'docker-credential-kptest');
      await writeFile(
        helper,
        `#!/bin/sh\n[ "$1" = get ] || exit 1\nread -r server\nif [ "$server" = "${reg.host}" ]; then printf '{"ServerURL":"%s","Username":"${CREDS.username}","Secret":"${CREDS.password}"}' "$server"; else echo "credentials not found in native keychain"; exit 1; fi\n`,
      );
      await chmod(helper, 0o755);
      const cfg = join(work, 'docker-config-helper.json');
      await writeFile(cfg, JSON.stringify({ credHelpers: { [reg.host]: 'kptest' } }));
      const oldPath = process.env.PATH;
      process.env.PATH = `${bin}${delimiter}${oldPath ?? ''}`;
      try {
        const res = await build({ registries: parseRegistriesConfig(mirrorYaml()), dockerConfigPath: cfg });
        assert.equal(res.images.length, 2);
      } finally {
        process.env.PATH = oldPath;
      }
    });

    it('fails with a clear error naming the registry when no credentials are configured', async () => {
      await assert.rejects(build({ registries: parseRegistriesConfig(mirrorYaml()), dockerConfigPath: join(work, 'none.json') }), (err: unknown) => {
        assert.ok(err instanceof UserError);
        assert.equal(err.code, 'auth');
        assert.equal(err.kind, 'runtime');
        assert.match(err.message, new RegExp(`registry ${reg.host.replace(/\./g, '\\.')} \\(for docker\\.io\\) requires authentication for kubeedge/(private|other) \\(HTTP 401\\) and no credentials are configured`));
        assert.match(err.hint ?? '', /docker login|registries\.yaml/);
        return true;
      });
    });

    it('fails with a clear error when the credentials are wrong', async () => {
      const y = `${mirrorYaml()}configs:\n  "${reg.host}":\n    auth:\n      username: ${CREDS.username}\n      password: wrong\n`;
      await assert.rejects(build({ registries: parseRegistriesConfig(y), dockerConfigPath: join(work, 'none.json') }), (err: unknown) => {
        assert.ok(err instanceof UserError);
        assert.equal(err.code, 'auth');
        assert.match(err.message, new RegExp(`registry ${reg.host.replace(/\./g, '\\.')} \\(for docker\\.io\\) rejected the credentials from .*registries\\.yaml configs\\."${reg.host.replace(/\./g, '\\.')}"\\.auth`));
        return true;
      });
    });
  });

  describe('Bearer tokens and redirects (token service in front of a real registry)', () => {
    let reg: TestRegistry;
    let front: TestProxy;
    let cdn: TestProxy;
    let fx: FixtureSet;
    const valid = new Map<string, string>(); // token -> scope
    const tokenRequests: { scope: string; authorization: string | undefined }[] = [];
    let requireLogin = false;

    before(async () => {
      reg = await startRegistry();
      fx = await pushFixtureSet(reg.url, SPECS);
      // The "CDN": another origin that serves blobs straight from the registry, recording what it got.
      cdn = await startProxy(reg.url);
      const handler = (req: IncomingMessage, res: ServerResponse): boolean => {
        const url = new URL(req.url ?? '/', 'http://x');
        if (url.pathname === '/token') {
          const scope = url.searchParams.get('scope') ?? '';
          tokenRequests.push({ scope, authorization: req.headers.authorization });
          const basic = `Basic ${Buffer.from(`${CREDS.username}:${CREDS.password}`).toString('base64')}`;
          if (requireLogin && req.headers.authorization !== basic) {
            res.writeHead(401, { 'content-type': 'application/json' });
            res.end('{"details":"incorrect username or password"}');
            return true;
          }
          const token = randomBytes(12).toString('hex');
          valid.set(token, scope);
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ token, expires_in: 300 }));
          return true;
        }
        if (url.pathname.startsWith('/v2/')) {
          const repo = /^\/v2\/(.+)\/(manifests|blobs)\//.exec(url.pathname)?.[1];
          const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
          if (!repo || valid.get(token) !== `repository:${repo}:pull`) {
            res.writeHead(401, {
              'content-type': 'application/json',
              'www-authenticate': `Bearer realm="${front.url}/token",service="kp-test",scope="repository:${repo ?? 'x'}:pull"`,
            });
            res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
            return true;
          }
          if (req.method === 'GET' && url.pathname.includes('/blobs/')) {
            res.writeHead(307, { location: `${cdn.url}${url.pathname}` });
            res.end();
            return true;
          }
        }
        return false; // forward to the registry
      };
      front = await startProxy(reg.url, { handler });
    });
    after(async () => {
      await front?.close();
      await cdn?.close();
      await reg?.stop();
    });
    const yaml = () => parseRegistriesConfig(`mirrors:\n  docker.io:\n    endpoint: ["${front.url}"]\n`);

    it('gets anonymous tokens per scope, caches them, and follows blob redirects without Authorization', async () => {
      tokenRequests.length = 0;
      front.reset();
      cdn.reset();
      const res = await build({ registries: yaml(), dockerConfigPath: join(work, 'none.json') });
      assert.equal(res.images.length, 2);
      // One token per repository scope, although several requests were made with each.
      assert.deepEqual(tokenRequests.map((t) => t.scope).sort(), ['repository:kubeedge/other:pull', 'repository:kubeedge/private:pull']);
      assert.ok(tokenRequests.every((t) => t.authorization === undefined));
      const authed = front.requests.filter((r) => r.kind !== 'token' && r.headers.authorization?.startsWith('Bearer '));
      assert.ok(authed.length >= 4, 'requests carried the bearer token');
      // Blobs came from the other origin, which never saw the token.
      const cdnBlobs = cdn.requests.filter((r) => r.kind === 'blob');
      const expectedBlobs = new Set(res.images.flatMap((i) => [i.configDigest, ...i.layers.map((l) => l.digest)]));
      assert.equal(new Set(cdnBlobs.map((r) => r.path.split('/').pop())).size, expectedBlobs.size);
      assert.ok(cdnBlobs.every((r) => r.headers.authorization === undefined), 'Authorization leaked to the redirect target');
    });

    it('refreshes a cached token that the registry stops accepting', async () => {
      tokenRequests.length = 0;
      const e = createRegistryEngine({ registries: yaml(), offline: true, dockerConfigPath: join(work, 'none.json') });
      const req = (i: number) => ({ images: ['kubeedge/private:v1'], platform: parseArch('amd64'), outFile: join(work, `tok-${i}.tar`), cacheDir: join(work, 'cache-tok'), mtime: 0 });
      try {
        await e.archive(req(1));
        assert.equal(tokenRequests.length, 1);
        await e.archive(req(2));
        assert.equal(tokenRequests.length, 1, 'the cached token was not reused');
        valid.clear(); // the registry revokes every token
        await e.archive(req(3));
        assert.equal(tokenRequests.length, 2, 'a 401 on the cached token did not fetch a new one');
      } finally {
        await e.close();
      }
    });

    it('sends Basic credentials to the token service, and reports a refused login', async () => {
      requireLogin = true;
      try {
        tokenRequests.length = 0;
        const y = parseRegistriesConfig(`mirrors:\n  docker.io:\n    endpoint: ["${front.url}"]\nconfigs:\n  "${front.host}":\n    auth: {username: ${CREDS.username}, password: ${CREDS.password}}\n`);
        const res = await build({ registries: y }, ['kubeedge/private:v1']);
        assert.equal(res.images[0]!.configDigest, fx.image('kubeedge/private').platforms[1]!.config.digest);
        assert.ok(tokenRequests.length > 0 && tokenRequests.every((t) => t.authorization?.startsWith('Basic ')));

        await assert.rejects(build({ registries: yaml(), dockerConfigPath: join(work, 'none.json') }, ['kubeedge/private:v1']), (err: unknown) => {
          assert.ok(err instanceof UserError);
          assert.equal(err.code, 'auth');
          assert.match(err.message, new RegExp(`token service http://127\\.0\\.0\\.1:\\d+ refused anonymous access for repository:kubeedge/private:pull on ${front.host.replace(/\./g, '\\.')} \\(HTTP 401\\)`));
          return true;
        });
      } finally {
        requireLogin = false;
      }
    });
  });
});
