// Issue 13 item 8: the edge settings are given to keadm join (--set), so edgecore starts with them.
// The fixture is KubeEdge v1.22.0's default edgecore config after keadm's own ParseSet + validation of
// those --set values (test/fixtures/upstream/README.md); here: the shipped install.sh passes exactly
// them, and the result already holds every setting configure-edgecore.sh enforces afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { keadmCall, renderReal } from './installer-calls.js';
import { UPSTREAM_FIXTURES } from './upstream-fixtures.js';

const CLOUD_IP = '10.0.0.10';

function readmeSets(): string[] {
  const lines = readFileSync(join(UPSTREAM_FIXTURES, 'README.md'), 'utf8').split('\n');
  const at = lines.indexOf('# join-set');
  assert.ok(at >= 0, 'README.md has no "# join-set" block');
  const out: string[] = [];
  for (const l of lines.slice(at + 1)) { if (l.startsWith('```')) break; out.push(l.trim()); }
  return out;
}

function get(obj: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), obj);
}

test('edge install.sh gives keadm join exactly the --set values the fixture was made with', async () => {
  const { installSh } = await renderReal('edge');
  const argv = keadmCall(installSh, 'join', { CLOUD: `${CLOUD_IP}:10000`, CLOUD_IP, TOKEN: 't', NODE_NAME: 'edge-01', CONTAINERD_SOCK: '/run/containerd/containerd.sock', CGROUP_DRIVER: 'systemd' });
  const sets = argv.flatMap((a, i) => (argv[i - 1] === '--set' ? [a] : []));
  assert.deepEqual(sets, readmeSets());
});

test('the config keadm writes from those --set values already holds every configure-edgecore.sh setting', async () => {
  const { installSh, files } = await renderReal('edge');
  const port = /^readonly PORT_CLOUDHUB_HTTPS=\d+ PORT_TUNNEL=(\d+)$/m.exec(installSh)?.[1];
  assert.ok(port, 'PORT_TUNNEL not found in install.sh');
  const script = files.get('scripts/configure-edgecore.sh') ?? '';
  const body = /\ndesired\(\) \{\n {2}cat <<SETTINGS\n([\s\S]*?)\nSETTINGS\n/.exec(script)?.[1];
  assert.ok(body, 'desired() settings not found in configure-edgecore.sh');
  const cfg = parse(readFileSync(join(UPSTREAM_FIXTURES, 'edgecore-v1.22.0-join-set.yaml'), 'utf8'));
  // the settings name the script's readonly header values ($EDGE_META_SERVER...): bash expands them
  const readonlys = script.split('\n').filter((l) => /^readonly [A-Z_]+=/.test(l) && !l.includes('$')).join('\n');
  const r = spawnSync('bash', ['-c', `set -eu\n${readonlys}\nCLOUD_IP=${CLOUD_IP}\ncat <<SETTINGS\n${body}\nSETTINGS\n`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const wanted = r.stdout.replace(/\n$/, '').split('\n');
  assert.ok(wanted.some((l) => l.endsWith(`|${CLOUD_IP}:${port}`)), 'edgeStream.server uses PORT_TUNNEL of install.sh');
  assert.ok(wanted.length >= 8);
  for (const line of wanted) {
    const [path, kind, value] = line.split('|') as [string, string, string];
    const have = get(cfg, path);
    if (kind === 'list') assert.deepEqual(have, [value], path);
    else assert.equal(String(have), value, path);
  }
  assert.deepEqual(get(cfg, 'modules.edged.tailoredKubeletConfig.registerWithTaints'), [{ key: 'node-role.kubernetes.io/edge', effect: 'NoSchedule' }]);
});
