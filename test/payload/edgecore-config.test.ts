// scripts/configure-edgecore.sh (edge) on a realistic KubeEdge v1.22 edgecore.yaml
// (test/fixtures/payload/edgecore-v1.22.yaml): the edit is checked with a real YAML parser, key by
// key — changed keys hold the new values, every other key is untouched — and a second run is a no-op.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parse, parseAllDocuments } from 'yaml';
import { REPO_ROOT, writeFakeBundle } from './helpers.js';
import { hostArch } from '../fixtures/payload/context.js';

const FIXTURE = join(REPO_ROOT, 'test', 'fixtures', 'payload', 'edgecore-v1.22.yaml');
/** The join token keadm wrote into the fixture (a fake test value). */
const TOKEN = `${'a'.repeat(64)}.eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJl`;
let work = '';
let script = '';

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'kp-edgecore-'));
  await writeFakeBundle('edge', hostArch(), join(work, 'bundle'));
  script = join(work, 'bundle', 'scripts', 'configure-edgecore.sh');
});
after(() => rmSync(work, { recursive: true, force: true }));

function runConfigure(config: string, cloudIp = '192.168.10.10', extra: string[] = [], sysroot = join(work, 'root')) {
  const r = spawnSync('bash', [script, '--cloud-ip', cloudIp, '--config', config, '--no-restart', ...extra], {
    encoding: 'utf8',
    env: { ...process.env, KP_SKIP_ROOT_CHECK: '1', KP_SYSROOT: sysroot },
  });
  return r;
}

/** Every leaf of a parsed YAML document as path -> JSON value (lists are leaves). */
function flatten(value: unknown, prefix = '', out = new Map<string, string>()): Map<string, string> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.set(prefix, JSON.stringify(value));
  }
  return out;
}

function parseStrict(text: string): unknown {
  const docs = parseAllDocuments(text);
  assert.equal(docs.length, 1);
  assert.deepEqual(docs[0]!.errors, []);
  assert.deepEqual(docs[0]!.warnings, []);
  return docs[0]!.toJS();
}

function lineDiff(a: string[], b: string[]): { removed: string[]; added: string[] } {
  const n = a.length;
  const m = b.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  }
  const removed: string[] = [];
  const added: string[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      i++;
      j++;
    } else if (lcs[i + 1]![j]! >= lcs[i]![j + 1]!) removed.push(a[i++]!);
    else added.push(b[j++]!);
  }
  removed.push(...a.slice(i));
  added.push(...b.slice(j));
  return { removed, added };
}

const WANT: Record<string, unknown> = {
  'modules.edgeStream.enable': true,
  'modules.edgeStream.server': '192.168.10.10:10004',
  'modules.edgeStream.tlsTunnelCAFile': '/etc/kubeedge/ca/rootCA.crt',
  'modules.edgeStream.tlsTunnelCertFile': '/etc/kubeedge/certs/server.crt',
  'modules.edgeStream.tlsTunnelPrivateKeyFile': '/etc/kubeedge/certs/server.key',
  'modules.metaManager.metaServer.enable': true,
  'modules.metaManager.metaServer.server': '127.0.0.1:10550',
  'modules.edged.tailoredKubeletConfig.clusterDNS': ['169.254.96.16'],
  'modules.edged.tailoredKubeletConfig.clusterDomain': 'cluster.local',
  'modules.edged.tailoredKubeletConfig.address': '127.0.0.1',
};

function checkEdited(beforeText: string, afterText: string, extra: Record<string, unknown> = {}): void {
  const want = { ...WANT, ...extra };
  const beforeMap = flatten(parseStrict(beforeText));
  const afterMap = flatten(parseStrict(afterText));
  for (const [path, value] of Object.entries(want)) {
    assert.equal(afterMap.get(path), JSON.stringify(value), `${path} after the edit`);
  }
  for (const [path, value] of beforeMap) {
    if (path in want) continue;
    assert.equal(afterMap.get(path), value, `${path} must be unchanged`);
  }
  for (const path of afterMap.keys()) {
    assert.ok(beforeMap.has(path) || path in want, `unexpected new key ${path}`);
  }
}

test('the fixture is a valid edgecore v1alpha2 config with the join-time defaults', () => {
  const cfg = parseStrict(readFileSync(FIXTURE, 'utf8')) as { apiVersion: string; kind: string; modules: Record<string, any> };
  assert.equal(cfg.apiVersion, 'edgecore.config.kubeedge.io/v1alpha2');
  assert.equal(cfg.kind, 'EdgeCore');
  assert.equal(cfg.modules.edgeStream.enable, false);
  assert.equal(cfg.modules.metaManager.metaServer.enable, false);
  assert.equal(cfg.modules.edged.tailoredKubeletConfig.clusterDNS, undefined);
});

test('edit: exactly the wanted keys change, a backup is made, other lines are kept byte for byte', () => {
  const dir = mkdtempSync(join(work, 'a-'));
  const config = join(dir, 'edgecore.yaml');
  copyFileSync(FIXTURE, config);
  const original = readFileSync(FIXTURE, 'utf8');
  const r = runConfigure(config);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /3 change\(s\)/);
  const edited = readFileSync(config, 'utf8');
  checkEdited(original, edited);
  const backups = readdirSync(dir).filter((f) => f.startsWith('edgecore.yaml.bak.'));
  assert.equal(backups.length, 1);
  assert.equal(readFileSync(join(dir, backups[0]!), 'utf8'), original);
  // line-level: only the touched lines differ (LCS diff of the two files)
  const { removed, added } = lineDiff(original.split('\n'), edited.split('\n'));
  assert.deepEqual(removed, ['    enable: false', '      enable: false'], 'removed lines');
  assert.deepEqual(added, ['    enable: true', '      clusterDNS:', '      - 169.254.96.16', '      enable: true'], 'added lines');
});

test('without certificates the join token stays (edgecore still needs it); the backup is 0600', () => {
  const dir = mkdtempSync(join(work, 't0-'));
  const config = join(dir, 'edgecore.yaml');
  copyFileSync(FIXTURE, config);
  const r = runConfigure(config);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /keeping modules\.edgeHub\.token: edgecore has no certificates yet/);
  assert.equal((parse(readFileSync(config, 'utf8')) as any).modules.edgeHub.token, TOKEN);
  const backup = readdirSync(dir).find((f) => f.startsWith('edgecore.yaml.bak.'))!;
  assert.equal(statSync(join(dir, backup)).mode & 0o777, 0o600);
  assert.ok(!r.stdout.includes(TOKEN) && !r.stderr.includes(TOKEN), 'the token is never printed');
});

test('once edgecore has its certificates the join token is cleared too, and never printed', () => {
  const dir = mkdtempSync(join(work, 't1-'));
  const config = join(dir, 'edgecore.yaml');
  copyFileSync(FIXTURE, config);
  const root = mkdtempSync(join(work, 'root-'));
  mkdirSync(join(root, 'etc/kubeedge/certs'), { recursive: true });
  writeFileSync(join(root, 'etc/kubeedge/certs/server.crt'), 'cert\n');
  writeFileSync(join(root, 'etc/kubeedge/certs/server.key'), 'key\n');
  const original = readFileSync(FIXTURE, 'utf8');
  const r = runConfigure(config, '192.168.10.10', [], root);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /4 change\(s\)/);
  assert.match(r.stdout, /modules\.edgeHub\.token: <join token> -> ""/);
  assert.ok(!r.stdout.includes(TOKEN) && !r.stderr.includes(TOKEN), 'the token is never printed');
  checkEdited(original, readFileSync(config, 'utf8'), { 'modules.edgeHub.token': '' });
  // a second run: nothing left to change
  const again = runConfigure(config, '192.168.10.10', [], root);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /0 change\(s\)/);
});

test('second run: nothing written, no new backup', () => {
  const dir = mkdtempSync(join(work, 'b-'));
  const config = join(dir, 'edgecore.yaml');
  copyFileSync(FIXTURE, config);
  assert.equal(runConfigure(config).status, 0);
  const once = readFileSync(config, 'utf8');
  const r = runConfigure(config);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /0 change\(s\)/);
  assert.equal(readFileSync(config, 'utf8'), once);
  assert.equal(readdirSync(dir).filter((f) => f.startsWith('edgecore.yaml.bak.')).length, 1);
});

test('a hand-edited config (external kubelet address, other DNS and cloud) is corrected', () => {
  const dir = mkdtempSync(join(work, 'c-'));
  const config = join(dir, 'edgecore.yaml');
  const original = readFileSync(FIXTURE, 'utf8')
    .replace('      address: 127.0.0.1\n', '      address: 0.0.0.0\n')
    .replace('      clusterDomain: cluster.local\n', '      clusterDNS:\n      - 10.96.0.10\n      - 10.96.0.11\n      clusterDomain: cluster.local\n')
    .replace('    server: 192.168.10.10:10004\n', '    server: 127.0.0.1:10004\n');
  writeFileSync(config, original);
  assert.equal((parse(original) as any).modules.edged.tailoredKubeletConfig.clusterDNS.length, 2);
  const r = runConfigure(config);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  checkEdited(original, readFileSync(config, 'utf8'));
  assert.match(r.stdout, /tailoredKubeletConfig\.address: 0\.0\.0\.0 -> 127\.0\.0\.1/);
});

test('another cloud IP moves edgeStream.server; --dry-run writes nothing', () => {
  const dir = mkdtempSync(join(work, 'd-'));
  const config = join(dir, 'edgecore.yaml');
  copyFileSync(FIXTURE, config);
  const dry = runConfigure(config, '10.20.30.40', ['--dry-run']);
  assert.equal(dry.status, 0, dry.stderr);
  assert.equal(readFileSync(config, 'utf8'), readFileSync(FIXTURE, 'utf8'));
  assert.equal(readdirSync(dir).length, 1);
  const r = runConfigure(config, '10.20.30.40');
  assert.equal(r.status, 0, r.stderr);
  const cfg = parse(readFileSync(config, 'utf8')) as any;
  assert.equal(cfg.modules.edgeStream.server, '10.20.30.40:10004');
});

test('a config without the parent mappings fails loudly and is left untouched', () => {
  const dir = mkdtempSync(join(work, 'e-'));
  const config = join(dir, 'edgecore.yaml');
  const text = 'apiVersion: edgecore.config.kubeedge.io/v1alpha2\nkind: EdgeCore\nmodules:\n  edgeHub:\n    enable: true\n';
  writeFileSync(config, text);
  const r = runConfigure(config);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /parent mapping is not in/);
  assert.equal(readFileSync(config, 'utf8'), text);
  assert.deepEqual(readdirSync(dir), ['edgecore.yaml']);
});

test('bad arguments', () => {
  const r1 = spawnSync('bash', [script, '--config', FIXTURE], { encoding: 'utf8' });
  assert.equal(r1.status, 2);
  assert.match(r1.stderr, /--cloud-ip is required/);
  const r2 = spawnSync('bash', [script, '--cloud-ip', '10.0.0.300'], { encoding: 'utf8' });
  assert.equal(r2.status, 2);
  const r3 = spawnSync('bash', [script, '--cloud-ip', '10.0.0.1', '--config', join(work, 'missing.yaml')], {
    encoding: 'utf8',
    env: { ...process.env, KP_SKIP_ROOT_CHECK: '1' },
  });
  assert.equal(r3.status, 3);
});
