// The CloudCore chart's objects as keadm v1.22.0 renders them (test/fixtures/upstream, real `keadm manifest`
// output) checked on the objects with the scheduling model: a CloudCore restart on a one-node cloud, and
// that the fixture was rendered with exactly the flags the shipped cloud install.sh gives `keadm init`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fits, podOf, restartCanStart, unschedulableReasons, type DeploymentStrategy, type Node, type PodSpec } from '../harness/sched.js';
import { findObject, manifestCommand, readObjects } from './upstream-fixtures.js';
import { flagPairs, keadmCall, renderReal } from './installer-calls.js';

const DEFAULT = 'keadm-v1.22.2-manifest-default.yaml';
const RECREATE = 'keadm-v1.22.2-manifest-recreate.yaml';
const INSTALLER = 'keadm-v1.22.2-manifest-installer.yaml';

// A K3s server node as K3s labels it (pkg/server: control-plane=true, master=true), untainted.
const cloud: Node = {
  name: 'cloud-01',
  labels: { 'kubernetes.io/hostname': 'cloud-01', 'kubernetes.io/os': 'linux', 'node-role.kubernetes.io/control-plane': 'true', 'node-role.kubernetes.io/master': 'true' },
};
// An edge node as edged registers it (node-role.kubernetes.io/edge, agent), with our join taint.
const edge: Node = {
  name: 'edge-01',
  labels: { 'kubernetes.io/hostname': 'edge-01', 'kubernetes.io/os': 'linux', 'node-role.kubernetes.io/edge': '', 'node-role.kubernetes.io/agent': '' },
  taints: [{ key: 'node-role.kubernetes.io/edge', effect: 'NoSchedule' }],
};

function cloudcore(file: string) {
  const d = findObject(readObjects(file), 'Deployment', 'cloudcore') as { spec?: { replicas?: number; strategy?: DeploymentStrategy } };
  const pod = podOf(d)!;
  return { strategy: d.spec?.strategy, replicas: d.spec?.replicas ?? 1, pod };
}

test('chart cloudcore pod: host network, ports 10000-10004 become host ports, affinity excludes edge nodes', () => {
  const { pod } = cloudcore(DEFAULT);
  assert.equal(pod.spec.hostNetwork, true);
  const ports = pod.spec.containers.flatMap((c) => c.ports ?? []).map((p) => p.hostPort).sort();
  assert.deepEqual(ports, [10000, 10001, 10002, 10003, 10004]);
  const untaintedEdge: Node = { ...edge, taints: [] };
  assert.match(unschedulableReasons(pod, untaintedEdge).join(), /NodeAffinity/);
  assert.ok(fits(pod, cloud));
});

test('chart strategy: absent by default, {type: Recreate} with --set cloudCore.strategy.type=Recreate', () => {
  assert.equal(cloudcore(DEFAULT).strategy, undefined);
  assert.deepEqual(cloudcore(RECREATE).strategy, { type: 'Recreate' });
  assert.deepEqual(cloudcore(INSTALLER).strategy, { type: 'Recreate' });
});

for (const [file, expectOk] of [[DEFAULT, false], [RECREATE, true], [INSTALLER, true]] as const) {
  test(`one-node cloud (plus an edge node): a CloudCore restart ${expectOk ? 'can' : 'cannot'} proceed with ${file}`, () => {
    const { pod, strategy, replicas } = cloudcore(file);
    assert.equal(replicas, 1);
    const old: PodSpec = pod.spec;
    const running = new Map<string, PodSpec[]>([['cloud-01', [old]], ['edge-01', []]]);
    const r = restartCanStart(pod, strategy, replicas, [cloud, edge], running, old);
    assert.equal(r.ok, expectOk, r.why);
    if (!expectOk) {
      assert.match(r.why, /maxSurge=1 maxUnavailable=0/);
      assert.match(r.why, /cloud-01: NodePorts/);
      assert.match(r.why, /edge-01: NodeAffinity/);
    }
  });
}

test('the installer fixture was rendered with exactly the flags the shipped cloud install.sh gives keadm init', async () => {
  const { installSh } = await renderReal('cloud');
  const init = flagPairs(keadmCall(installSh, 'init', { ADVERTISE: '10.0.0.10', KUBECONFIG_PATH: '/etc/rancher/k3s/k3s.yaml', KEADM_BIN: 'keadm' }))
    .filter(([f]) => f !== '--kube-config'); // keadm manifest renders without a cluster
  const fixture = flagPairs(['manifest', ...manifestCommand(INSTALLER).filter((a) => a !== '--skip-crds')]);
  const key = (p: [string, string]) => p.join(' ');
  assert.deepEqual([...fixture].map(key).sort(), [...init].map(key).sort(),
    'install.sh and the fixture differ: re-render the fixture with the installer\'s flags (test/fixtures/upstream/README.md)');
});

test('the default and recreate fixtures differ from the installer one only where the README says', () => {
  const inst = manifestCommand(INSTALLER).join(' ');
  const rec = manifestCommand(RECREATE).join(' ');
  const def = manifestCommand(DEFAULT).join(' ');
  assert.ok(rec.includes('--set cloudCore.strategy.type=Recreate'));
  assert.ok(!def.includes('cloudCore.strategy'));
  assert.equal(def, rec.replace(' --set cloudCore.strategy.type=Recreate', ''));
  assert.ok(inst.includes('--set cloudCore.strategy.type=Recreate'));
});
