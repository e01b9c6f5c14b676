import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRegistriesConfig, parseRegistriesConfig, resolveEndpoints, isLoopbackHost } from '../../src/engines/registry/index.js';
import { parseWwwAuthenticate } from '../../src/engines/registry/challenge.js';
import { normalizeAuthKey } from '../../src/oci/credentials.js';
import { parseManifest, selectPlatform } from '../../src/engines/registry/manifest.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { retryDelayMs } from '../../src/util/retry.js';
import { UserError } from '../../src/errors.js';
import { parseArch } from '../../src/platform.js';

describe('registries.yaml', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kp-regcfg-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads mirrors, rewrites, auth and tls in the K3s format', async () => {
    const file = join(dir, 'registries.yaml');
    await writeFile(
      file,
      [
        'mirrors:',
        '  docker.io:',
        '    endpoint: ["http://127.0.0.1:5000", "https://mirror.example.com/prefix"]',
        '    rewrite:',
        '      "^rancher/(.*)": "mirrored/rancher/$1"',
        'configs:',
        '  "127.0.0.1:5000":',
        '    auth: {username: u, password: p}',
        '    tls: {insecure_skip_verify: true, ca_file: /x/ca.pem, cert_file: /x/c.pem, key_file: /x/k.pem}',
        '  mirror.example.com:',
        '    auth: {token: abc}',
      ].join('\n'),
    );
    const cfg = await loadRegistriesConfig(file);
    assert.equal(cfg.file, file);
    assert.deepEqual(cfg.mirrors['docker.io']!.endpoints, ['http://127.0.0.1:5000', 'https://mirror.example.com/prefix']);
    assert.deepEqual(cfg.configs['127.0.0.1:5000'], {
      auth: { username: 'u', password: 'p' },
      tls: { insecureSkipVerify: true, caFile: '/x/ca.pem', certFile: '/x/c.pem', keyFile: '/x/k.pem' },
    });
    assert.deepEqual(cfg.configs['mirror.example.com']!.auth, { token: 'abc' });

    const eps = resolveEndpoints(cfg, 'docker.io', 'rancher/mirrored-pause');
    assert.deepEqual(
      eps.map((e) => [e.apiBase, e.repository, e.isDefault]),
      [
        ['http://127.0.0.1:5000/v2', 'mirrored/rancher/mirrored-pause', false],
        ['https://mirror.example.com/prefix/v2', 'mirrored/rancher/mirrored-pause', false],
        // The registry itself last, without rewrite (K3s semantics).
        ['https://registry-1.docker.io/v2', 'rancher/mirrored-pause', true],
      ],
    );
    // Offline keeps loopback endpoints only; noUpstreamFallback drops the default endpoint.
    assert.deepEqual(resolveEndpoints(cfg, 'docker.io', 'x/y', { offline: true }).map((e) => e.host), ['127.0.0.1:5000']);
    assert.deepEqual(resolveEndpoints(cfg, 'docker.io', 'x/y', { noUpstreamFallback: true }).map((e) => e.isDefault), [false, false]);
    // A registry without a mirror goes to itself; loopback registries over plain HTTP.
    assert.deepEqual(resolveEndpoints(cfg, 'quay.io', 'a/b').map((e) => e.apiBase), ['https://quay.io/v2']);
    assert.deepEqual(resolveEndpoints(cfg, '127.0.0.1:6000', 'a/b').map((e) => e.apiBase), ['http://127.0.0.1:6000/v2']);
  });

  it('applies the "*" mirror to registries without their own entry', () => {
    const cfg = parseRegistriesConfig('mirrors:\n  "*":\n    endpoint: ["http://localhost:7000"]\n');
    assert.deepEqual(resolveEndpoints(cfg, 'registry.k8s.io', 'pause', { offline: true }).map((e) => `${e.apiBase} ${e.repository}`), ['http://localhost:7000/v2 pause']);
  });

  it('refuses plain HTTP to a non-loopback host unless the config opts into insecure transport for it', () => {
    const cfg = parseRegistriesConfig('mirrors:\n  docker.io:\n    endpoint: ["http://10.1.2.3:5000"]\n');
    assert.throws(() => resolveEndpoints(cfg, 'docker.io', 'a/b'), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.equal(e.code, 'input');
      assert.match(e.message, /endpoint http:\/\/10\.1\.2\.3:5000 for docker\.io uses plain HTTP to a non-loopback host/);
      assert.match(e.hint ?? '', /configs\."10\.1\.2\.3:5000"\.tls\.insecure_skip_verify: true/);
      return true;
    });
    const ok = parseRegistriesConfig('mirrors:\n  docker.io:\n    endpoint: ["http://10.1.2.3:5000"]\nconfigs:\n  "10.1.2.3:5000":\n    tls: {insecure_skip_verify: true}\n');
    assert.equal(resolveEndpoints(ok, 'docker.io', 'a/b')[0]!.apiBase, 'http://10.1.2.3:5000/v2');
  });

  it('rejects bad input with file:line:col and the key', async () => {
    const cases: [string, RegExp][] = [
      ['mirrors: [1]', /^x\.yaml:1:10: mirrors: must be a mapping$/m],
      ['mirrors:\n  docker.io:\n    endpoints: []', /^x\.yaml:3:5: mirrors\."docker\.io"\.endpoints: unknown key \(expected 'endpoint', 'rewrite'\)$/m],
      ['mirrors:\n  docker.io:\n    endpoint: "http://a"', /^x\.yaml:3:15: mirrors\."docker\.io"\.endpoint: must be a list of URLs$/m],
      ['mirrors:\n  docker.io:\n    endpoint: ["ftp://a"]', /^x\.yaml:3:16: mirrors\."docker\.io"\.endpoint\[0\]: 'ftp:\/\/a': only http/m],
      ['mirrors:\n  docker.io:\n    rewrite: {"(": "x"}', /^x\.yaml:3:20: mirrors\."docker\.io"\.rewrite\."\(": not a valid regular expression/m],
      ['configs:\n  "h:1":\n    auth: {username: u}', /^x\.yaml:3:11: configs\."h:1"\.auth: username and password must be given together$/m],
      ['configs:\n  "h:1":\n    auth: {auth: bm9jb2xvbg==}', /^x\.yaml:3:18: configs\."h:1"\.auth\.auth: must be base64 of "username:password"$/m],
      ['configs:\n  "h:1":\n    tls: {insecure_skip_verify: "yes"}', /^x\.yaml:3:33: configs\."h:1"\.tls\.insecure_skip_verify: must be true or false$/m],
      ['configs:\n  "h:1":\n    tls: {cert_file: /c.pem}', /^x\.yaml:3:10: configs\."h:1"\.tls: cert_file and key_file must be given together$/m],
      ['mirrors: {a: [}', /^x\.yaml:1:\d+: YAML syntax: /m],
      ['foo: 1', /^x\.yaml:1:1: foo: unknown key \(expected 'mirrors' and\/or 'configs'\)$/m],
    ];
    for (const [text, re] of cases) {
      assert.throws(() => parseRegistriesConfig(text, 'x.yaml'), (e: unknown) => e instanceof UserError && re.test(e.message), text);
    }
    await assert.rejects(loadRegistriesConfig(join(dir, 'missing.yaml')), /cannot read registries config .*missing\.yaml/);
    assert.deepEqual(parseRegistriesConfig('', 'empty.yaml'), { file: 'empty.yaml', mirrors: {}, configs: {} });
    assert.deepEqual(parseRegistriesConfig('mirrors:\n  docker.io:\nconfigs:\n', 'nulls.yaml'), { file: 'nulls.yaml', mirrors: { 'docker.io': { endpoints: [], rewrite: [] } }, configs: {} });
  });

  it('lists every problem of a bad registries.yaml at once, each at its line and column, with the format hint', async () => {
    const file = join(dir, 'bad-registries.yaml');
    await writeFile(
      file,
      [
        '# a comment line first',
        'mirrors:',
        '  docker.io:',
        '    endpoint:',
        '      - "https://mirror.example.com"',
        '      - 42',
        '  quay.io:',
        '    rewrit: {"^a": "b"}',
        'configs:',
        '  mirror.example.com:',
        '    tls:',
        '      insecure_skip_verify: 1',
      ].join('\n'),
    );
    await assert.rejects(loadRegistriesConfig(file), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.deepEqual(e.message.split('\n'), [
        `${file}:6:9: mirrors."docker.io".endpoint[1]: must be a URL string`,
        `${file}:8:5: mirrors."quay.io".rewrit: unknown key (expected 'endpoint', 'rewrite')`,
        `${file}:12:29: configs."mirror.example.com".tls.insecure_skip_verify: must be true or false`,
      ]);
      assert.match(e.hint ?? '', /K3s registries\.yaml format/);
      return true;
    });
  });
});

describe('registry protocol helpers', () => {
  it('parses WWW-Authenticate challenges', () => {
    assert.deepEqual(parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"'), [
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/nginx:pull' } },
    ]);
    assert.deepEqual(parseWwwAuthenticate('Basic realm="Registry Realm"'), [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
    assert.deepEqual(parseWwwAuthenticate(undefined), []);
  });

  it('normalises Docker config auth keys', () => {
    assert.equal(normalizeAuthKey('https://index.docker.io/v1/'), 'docker.io');
    assert.equal(normalizeAuthKey('http://127.0.0.1:5000/v2/'), '127.0.0.1:5000');
    assert.equal(normalizeAuthKey('Registry.Example.com'), 'registry.example.com');
  });

  it('knows loopback hosts', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]']) assert.ok(isLoopbackHost(h), h);
    for (const h of ['10.0.0.1', 'registry-1.docker.io', '128.0.0.1', '192.168.1.1']) assert.ok(!isLoopbackHost(h), h);
  });

  it('honours Retry-After (seconds or date) within the cap, else backs off exponentially', () => {
    const o = { attempts: 5, baseDelayMs: 100, maxDelayMs: 2_000 };
    assert.equal(retryDelayMs(o, 1, '1'), 1_000);
    assert.equal(retryDelayMs(o, 1, '3600'), 2_000);
    const d = retryDelayMs(o, 1, new Date(Date.now() + 1_500).toUTCString());
    assert.ok(d > 400 && d <= 1_500, String(d));
    const b3 = retryDelayMs(o, 3);
    assert.ok(b3 >= 400 && b3 <= 480, String(b3));
  });

  it('selects platforms without falling back to another architecture, ignoring attestations', () => {
    const d = (architecture: string, variant?: string, extra: Partial<Descriptor> = {}): Descriptor => ({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: `sha256:${(architecture + (variant ?? '')).padEnd(64, '0').replace(/[^a-f0-9]/g, 'a').slice(0, 64)}`,
      size: 1,
      platform: { os: 'linux', architecture, ...(variant ? { variant } : {}) },
      ...extra,
    });
    const att: Descriptor = { ...d('unknown'), platform: { os: 'unknown', architecture: 'unknown' }, annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } };
    const idx = [att, d('amd64'), d('arm64', 'v8'), d('arm', 'v6'), d('arm', 'v7')];
    assert.equal(selectPlatform('x', idx, parseArch('arm64')).platform?.variant, 'v8');
    assert.equal(selectPlatform('x', idx, parseArch('arm')).platform?.variant, 'v7');
    assert.equal(selectPlatform('x', idx, parseArch('arm/v6')).platform?.variant, 'v6');
    // arm without a variant in the index means v7.
    assert.equal(selectPlatform('x', [d('arm')], parseArch('arm')).platform?.architecture, 'arm');
    assert.throws(() => selectPlatform('x', [d('arm')], parseArch('arm/v6')), /x has no image for linux\/arm\/v6; it has: linux\/arm$/);
    assert.throws(() => selectPlatform('img:1', [att, d('amd64')], parseArch('arm64')), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.equal(e.code, 'platform');
      assert.equal(e.message, 'img:1 has no image for linux/arm64; it has: linux/amd64');
      return true;
    });
  });

  it('takes arm/v7, else v6, else v5 for arm (containerd platforms.Only order); amd64 and arm64 stay exact', () => {
    const d = (architecture: string, variant?: string): Descriptor => ({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: `sha256:${createHash('sha256').update(`${architecture}/${variant ?? ''}`).digest('hex')}`,
      size: 1,
      platform: { os: 'linux', architecture, ...(variant ? { variant } : {}) },
    });
    const arm = parseArch('arm');
    // Index order does not matter: the better variant wins.
    assert.equal(selectPlatform('x', [d('arm', 'v5'), d('arm', 'v6'), d('amd64')], arm).platform?.variant, 'v6');
    assert.equal(selectPlatform('x', [d('arm', 'v6'), d('arm', 'v7')], arm).platform?.variant, 'v7');
    assert.equal(selectPlatform('x', [d('amd64'), d('arm', 'v5')], arm).platform?.variant, 'v5');
    assert.equal(selectPlatform('x', [d('arm', 'v5'), d('arm', 'v6')], parseArch('arm/v6')).platform?.variant, 'v6');
    // Never a higher variant, arm/v8, or another architecture.
    assert.throws(() => selectPlatform('x', [d('arm', 'v7')], parseArch('arm/v6')), /x has no image for linux\/arm\/v6; it has: linux\/arm\/v7$/);
    assert.throws(() => selectPlatform('x', [d('arm', 'v8'), d('arm64')], arm), /x has no image for linux\/arm\/v7; it has: linux\/arm\/v8, linux\/arm64$/);
    // containerd's Only would take arm/v7 for arm64 and 386 for amd64; a bundle never does.
    assert.throws(() => selectPlatform('x', [d('arm', 'v7'), d('arm', 'v8')], parseArch('arm64')), /no image for linux\/arm64; it has: linux\/arm\/v7, linux\/arm\/v8$/);
    assert.throws(() => selectPlatform('x', [d('386'), d('amd64', 'v2')], parseArch('amd64')), /no image for linux\/amd64; it has: linux\/386, linux\/amd64\/v2$/);
    assert.throws(() => selectPlatform('x', [d('arm', 'v6')], parseArch('arm64')), (e: unknown) => e instanceof UserError && !/v7, then/.test(e.hint ?? ''));
    assert.throws(() => selectPlatform('x', [d('amd64')], arm), (e: unknown) => e instanceof UserError && /takes linux\/arm\/v7, then linux\/arm\/v6, then linux\/arm\/v5/.test(e.hint ?? ''));
  });

  it('refuses schema 1 manifests with a clear error', () => {
    const body = Buffer.from(JSON.stringify({ schemaVersion: 1, name: 'library/old', tag: 'v1', fsLayers: [] }));
    assert.throws(() => parseManifest('docker.io/library/old:v1', body, 'application/vnd.docker.distribution.manifest.v1+prettyjws'), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.equal(e.code, 'unsupported');
      assert.match(e.message, /docker\.io\/library\/old:v1 uses the Docker image manifest schema 1, which is not supported/);
      return true;
    });
  });
});
