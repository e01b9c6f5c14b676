// Issue 13 item 3 on objects: every workload the cloud install creates — K3s' packaged ones (fixture of
// their pod specs), the CloudCore chart's (real keadm manifest output) and ours (rendered from the
// templates through the product's code) — placed with test/harness/sched.ts on a cloud node and on an
// edge node registered as our keadm join registers it. None may land on the edge unless intended, each
// intended one must, and wherever one may run, that side's bundle must hold its images.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAllDocuments } from 'yaml';
import { fits, podOf, unschedulableReasons, type Node, type Pod, type PodSpec, type Taint } from '../harness/sched.js';
import { normalizeImageRef } from '../../src/manifest/image-ref.js';
import { loadManifest } from '../../src/manifest/load.js';
import { makePlan } from '../../src/plan/plan.js';
import { buildRenderContext } from '../../src/render/build-context.js';
import { renderSide } from '../../src/render/render.js';
import { defaultPlatform } from '../../src/platform.js';
import { REPO_ROOT, TEMPLATES_ROOT } from './helpers.js';
import { keadmCall, renderReal } from './installer-calls.js';
import { readObjects, type K8sObject } from './upstream-fixtures.js';
import { join } from 'node:path';

const SVCLB_LABEL = 'svccontroller.k3s.cattle.io/enablelb';
/** Workloads meant to run on edge nodes (their images are in the edge bundle). */
const EDGE_INTENDED = new Set(['DaemonSet/kubeedge/edgemesh-agent', 'DaemonSet/edge-eclipse-mosquitto']);
/** Workloads meant to run on the cloud node: all the others but mosquitto (edge only, chart affinity). */
const CLOUD_EXCLUDED = new Set(['DaemonSet/edge-eclipse-mosquitto']);

// Node labels edged registers with: kubelet's initialNode in KubeEdge's kubernetes fork adds
// node-role.kubernetes.io/edge and /agent (both ""), then Modules.Edged.NodeLabels (keadm join --labels).
function edgeNodeFromJoin(argv: string[]): Node {
  const labels: Record<string, string> = {
    'kubernetes.io/hostname': 'edge-01', 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64',
    'beta.kubernetes.io/os': 'linux', 'beta.kubernetes.io/arch': 'amd64',
    'node-role.kubernetes.io/edge': '', 'node-role.kubernetes.io/agent': '',
  };
  const taints: Taint[] = [];
  for (let i = 1; i < argv.length; i += 2) {
    const [flag, value] = [argv[i]!, argv[i + 1] ?? ''];
    if (flag === '--labels') for (const kv of value.split(',')) { const [k, v = ''] = kv.split('='); if (k) labels[k] = v; }
    if (flag !== '--set') continue;
    // keadm's ParseSet: comma-separated Go-field paths; only the RegisterWithTaints keys are modelled here.
    for (const item of value.split(',')) {
      const m = /^Modules\.Edged\.TailoredKubeletConfig\.RegisterWithTaints\[(\d+)\]\.(Key|Value|Effect)=(.*)$/.exec(item);
      if (!m) {
        // Keys that change how the node registers (labels, taints, schedulability) must be modelled.
        if (/NodeLabels|Taint|RegisterSchedulable|RegisterNode|nodeLabels|taint|registerSchedulable|registerNode/.test(item)) throw new Error(`keadm join --set ${item}: not modelled by this test; model it before relying on it`);
        continue;
      }
      const t = (taints[Number(m[1])] ??= { key: '', effect: 'NoSchedule' });
      if (m[2] === 'Key') t.key = m[3]!;
      else if (m[2] === 'Value') t.value = m[3]!;
      else t.effect = m[3] as Taint['effect'];
    }
  }
  return { name: 'edge-01', labels, taints: taints.filter(Boolean) };
}

// K3s ServiceLB (servicelb.go newDaemonSet/nodeHasDaemonSetLabel): svclb pods get the node selector
// enablelb=true as soon as any node carries the label key.
function applyServiceLB(pods: Pod[], nodes: Node[]): Pod[] {
  const any = nodes.some((n) => Object.hasOwn(n.labels, SVCLB_LABEL));
  return pods.map((p) => (p.name.startsWith('DaemonSet/kube-system/svclb-') && any
    ? { ...p, spec: { ...p.spec, nodeSelector: { ...(p.spec.nodeSelector ?? {}), [SVCLB_LABEL]: 'true' } } } : p));
}

async function world(opts: { edgeTaint?: boolean; cloudLabel?: boolean } = {}) {
  const cloudSide = await renderReal('cloud');
  const edgeSide = await renderReal('edge');
  // Our own manifests, rendered through the product's code from manifests/versions.yaml.
  const lm = await loadManifest(join(REPO_ROOT, 'manifests', 'versions.yaml'));
  const plan = makePlan(lm, { platforms: [defaultPlatform('amd64')], only: 'cloud', outDir: join(REPO_ROOT, 'dist-test-unused'), compression: 'none' });
  const files = await renderSide(TEMPLATES_ROOT, buildRenderContext(plan, plan.bundles[0]!));
  const ours: K8sObject[] = files.filter((f) => f.path.startsWith('manifests/') && f.path.endsWith('.yaml'))
    .flatMap((f) => parseAllDocuments(f.content).map((d) => d.toJS() as K8sObject)).filter((o) => o?.kind);
  const objects = [...readObjects('k3s-v1.31.14-packaged-workloads.yaml'), ...readObjects('keadm-v1.22.2-manifest-installer.yaml'), ...ours];
  const joinArgv = keadmCall(edgeSide.installSh, 'join', { CLOUD: '10.0.0.10:10000', CLOUD_IP: '10.0.0.10', TOKEN: 't', NODE_NAME: 'edge-01', CONTAINERD_SOCK: '/run/containerd/containerd.sock', CGROUP_DRIVER: 'systemd' });
  const edge = edgeNodeFromJoin(joinArgv);
  if (opts.edgeTaint === false) edge.taints = [];
  const cloud: Node = {
    name: 'cloud-01',
    labels: { 'kubernetes.io/hostname': 'cloud-01', 'kubernetes.io/os': 'linux', 'node-role.kubernetes.io/control-plane': 'true', 'node-role.kubernetes.io/master': 'true' },
  };
  // The cloud install.sh labels this node (pin_servicelb, called from main).
  const labelled = /^readonly SERVICELB_LABEL=svccontroller\.k3s\.cattle\.io\/enablelb$/m.test(cloudSide.installSh)
    && /kc label node "\$NODE_NAME" "\$SERVICELB_LABEL=true"/.test(cloudSide.installSh) && /\n {2}pin_servicelb\n/.test(cloudSide.installSh);
  if (labelled && opts.cloudLabel !== false) cloud.labels[SVCLB_LABEL] = 'true';
  const pods = applyServiceLB(objects.map((o) => podOf(o)).filter((p): p is Pod => p !== null), [cloud, edge]);
  return { pods, cloud, edge, cloudImages: new Set(cloudSide.images), edgeImages: new Set(edgeSide.images), labelled };
}

const images = (s: PodSpec) => [...s.containers, ...(s.initContainers ?? [])].map((c) => normalizeImageRef(c.image ?? ''));

test('every workload of the cloud install: none lands on an edge node unless intended; each intended one does', async () => {
  const { pods, edge, labelled } = await world();
  assert.ok(labelled, 'the cloud install.sh labels its node svccontroller.k3s.cattle.io/enablelb=true');
  assert.ok(pods.length >= 11, `expected every workload, got ${pods.map((p) => p.name).join(', ')}`);
  for (const name of EDGE_INTENDED) assert.ok(pods.some((p) => p.name === name), `${name} missing from the objects`);
  for (const p of pods) {
    const ok = fits(p, edge);
    assert.equal(ok, EDGE_INTENDED.has(p.name), `${p.name} on the edge node: ${ok ? 'fits' : unschedulableReasons(p, edge).join('; ')}`);
  }
});

test('every workload meant for the cloud node fits there, all together (no host port clash)', async () => {
  const { pods, cloud } = await world();
  const placed: PodSpec[] = [];
  for (const p of pods) {
    const ok = fits(p, cloud, placed);
    assert.equal(ok, !CLOUD_EXCLUDED.has(p.name), `${p.name} on the cloud node: ${ok ? 'fits' : unschedulableReasons(p, cloud, placed).join('; ')}`);
    if (ok) placed.push(p.spec);
  }
});

test('wherever a workload may run, that side\'s bundle holds its images', async () => {
  const { pods, cloud, edge, cloudImages, edgeImages } = await world();
  for (const p of pods) {
    for (const [node, have, side] of [[cloud, cloudImages, 'cloud'], [edge, edgeImages, 'edge']] as const) {
      if (!fits(p, node)) continue;
      for (const ref of images(p.spec)) assert.ok(have.has(ref), `${p.name} may run on the ${side} node but the ${side} bundle lacks ${ref}`);
    }
  }
});

test('controls: without the edge taint K3s workloads can land on the edge; without the cloud label svclb too', async () => {
  const untainted = await world({ edgeTaint: false });
  const onEdge = untainted.pods.filter((p) => fits(p, untainted.edge)).map((p) => p.name);
  for (const n of ['Deployment/kube-system/coredns', 'Deployment/kube-system/traefik', 'Job/kube-system/helm-install-traefik']) assert.ok(onEdge.includes(n), `${n} should fit an untainted edge`);
  assert.ok(!onEdge.includes('DaemonSet/kube-system/svclb-traefik'), 'the enablelb label keeps svclb off an untainted edge');
  const neither = await world({ edgeTaint: false, cloudLabel: false });
  assert.ok(neither.pods.some((p) => p.name === 'DaemonSet/kube-system/svclb-traefik' && fits(p, neither.edge)), 'svclb fits an untainted edge when no node is labelled');
});
