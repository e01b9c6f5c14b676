// The scheduling model on its own cases: each rule both ways (fits / does not fit), so a broken rule fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  defaultPodSpec, fits, podOf, rolloutBounds, restartCanStart, scaled, tolerates, unschedulableReasons,
  type Node, type Pod, type PodSpec,
} from './sched.js';

const node = (name: string, labels: Record<string, string> = {}, taints: Node['taints'] = []): Node => ({ name, labels, taints });
const pod = (spec: Partial<PodSpec>, kind = 'Pod'): Pod => podOf({ kind, metadata: { name: 'p' }, ...(kind === 'Pod' ? { spec: { containers: [{ name: 'c' }], ...spec } } : { spec: { template: { spec: { containers: [{ name: 'c' }], ...spec } } } }) })!;

test('NodeName: only the named node', () => {
  const p = pod({ nodeName: 'a' });
  assert.ok(fits(p, node('a')));
  assert.match(unschedulableReasons(p, node('b')).join(), /NodeName/);
});

test('nodeSelector: every pair must be a label of the node, value included ("" is a value)', () => {
  const p = pod({ nodeSelector: { role: 'x', empty: '' } });
  assert.ok(fits(p, node('a', { role: 'x', empty: '' })));
  assert.ok(!fits(p, node('a', { role: 'y', empty: '' })));
  assert.ok(!fits(p, node('a', { role: 'x' })), 'absent label does not equal ""');
});

test('required node affinity: operators, terms ORed, expressions ANDed, empty term matches nothing', () => {
  const aff = (terms: object[]) => pod({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms as never } } } });
  const dne = aff([{ matchExpressions: [{ key: 'node-role.kubernetes.io/edge', operator: 'DoesNotExist' }] }]);
  assert.ok(fits(dne, node('cloud', { 'node-role.kubernetes.io/control-plane': 'true' })));
  assert.ok(!fits(dne, node('edge', { 'node-role.kubernetes.io/edge': '' })));
  const ex = aff([{ matchExpressions: [{ key: 'node-role.kubernetes.io/edge', operator: 'Exists' }] }]);
  assert.ok(fits(ex, node('edge', { 'node-role.kubernetes.io/edge': '' })));
  assert.ok(!fits(ex, node('cloud', {})));
  const inNot = aff([{ matchExpressions: [{ key: 'z', operator: 'In', values: ['1', '2'] }, { key: 'w', operator: 'NotIn', values: ['bad'] }] }]);
  assert.ok(fits(inNot, node('a', { z: '2' })));
  assert.ok(!fits(inNot, node('a', { z: '2', w: 'bad' })));
  assert.ok(!fits(inNot, node('a', { z: '3' })));
  const gt = aff([{ matchExpressions: [{ key: 'n', operator: 'Gt', values: ['5'] }] }]);
  assert.ok(fits(gt, node('a', { n: '6' })));
  assert.ok(!fits(gt, node('a', { n: '5' })));
  assert.ok(!fits(gt, node('a', { n: 'x' })));
  const or = aff([{ matchExpressions: [{ key: 'a', operator: 'Exists' }] }, { matchExpressions: [{ key: 'b', operator: 'Exists' }] }]);
  assert.ok(fits(or, node('n', { b: '' })));
  assert.ok(!fits(or, node('n', { c: '' })));
  assert.ok(!fits(aff([{}]), node('n', { a: '' })), 'a term without expressions selects no node');
});

test('tolerations: key/effect/operator/value rules; empty key with Exists tolerates every taint', () => {
  const t = { key: 'k', value: 'v', effect: 'NoSchedule' as const };
  assert.ok(tolerates({ key: 'k', operator: 'Exists' }, t));
  assert.ok(tolerates({ key: 'k', operator: 'Equal', value: 'v', effect: 'NoSchedule' }, t));
  assert.ok(tolerates({ key: 'k', value: 'v' }, t), 'empty operator means Equal');
  assert.ok(!tolerates({ key: 'k', operator: 'Equal', value: 'w' }, t));
  assert.ok(!tolerates({ key: 'k', operator: 'Exists', effect: 'NoExecute' }, t));
  assert.ok(!tolerates({ key: 'other', operator: 'Exists' }, t));
  assert.ok(tolerates({ operator: 'Exists' }, t));
  assert.ok(!tolerates({ value: 'v' }, { key: 'k', value: 'x', effect: 'NoSchedule' }), 'empty key with Equal compares values');
});

test('TaintToleration filter: NoSchedule and NoExecute block, PreferNoSchedule does not', () => {
  const edge = node('e', {}, [{ key: 'node-role.kubernetes.io/edge', effect: 'NoSchedule' }]);
  assert.match(unschedulableReasons(pod({}), edge).join(), /TaintToleration.*node-role.kubernetes.io\/edge/);
  assert.ok(fits(pod({ tolerations: [{ key: 'node-role.kubernetes.io/edge', operator: 'Exists', effect: 'NoSchedule' }] }), edge));
  assert.ok(!fits(pod({}), node('e', {}, [{ key: 'x', effect: 'NoExecute' }])));
  assert.ok(fits(pod({}), node('e', {}, [{ key: 'x', effect: 'PreferNoSchedule' }])));
});

test('DaemonSet pods get the controller tolerations (network-unavailable only with hostNetwork), Deployment pods do not', () => {
  const notReady = node('n', {}, [{ key: 'node.kubernetes.io/not-ready', effect: 'NoExecute' }]);
  assert.ok(fits(pod({}, 'DaemonSet'), notReady));
  assert.ok(!fits(pod({}, 'Deployment'), notReady));
  const netDown = node('n', {}, [{ key: 'node.kubernetes.io/network-unavailable', effect: 'NoSchedule' }]);
  assert.ok(fits(pod({ hostNetwork: true }, 'DaemonSet'), netDown));
  assert.ok(!fits(pod({}, 'DaemonSet'), netDown));
  const custom = node('n', {}, [{ key: 'node-role.kubernetes.io/edge', effect: 'NoSchedule' }]);
  assert.ok(!fits(pod({}, 'DaemonSet'), custom), 'no automatic toleration for other taints');
});

test('hostNetwork defaults hostPort to containerPort; without it a containerPort claims no host port', () => {
  const spec: PodSpec = { hostNetwork: true, containers: [{ name: 'c', ports: [{ containerPort: 10000 }, { containerPort: 53, hostPort: 5353, protocol: 'UDP' }] }] };
  assert.deepEqual(defaultPodSpec(spec).containers[0]!.ports!.map((p) => p.hostPort), [10000, 5353]);
  assert.equal(spec.containers[0]!.ports![0]!.hostPort, undefined, 'input not changed');
  assert.equal(defaultPodSpec({ ...spec, hostNetwork: false }).containers[0]!.ports![0]!.hostPort, undefined);
});

test('NodePorts: same protocol+port conflicts (0.0.0.0 against any IP); other protocol, port or IP does not', () => {
  const holder = (ip: string | undefined, protocol = 'TCP'): PodSpec => ({ containers: [{ name: 'h', ports: [{ containerPort: 80, hostPort: 80, ...(ip ? { hostIP: ip } : {}), protocol }] }] });
  const want = (ip?: string, protocol?: string) => pod({ containers: [{ name: 'w', ports: [{ containerPort: 80, hostPort: 80, ...(ip ? { hostIP: ip } : {}), ...(protocol ? { protocol } : {}) }] }] });
  const n = node('n');
  assert.match(unschedulableReasons(want(), n, [holder(undefined)]).join(), /NodePorts.*TCP\/80/);
  assert.ok(!fits(want('10.0.0.1'), n, [holder(undefined)]));
  assert.ok(!fits(want(), n, [holder('10.0.0.1')]));
  assert.ok(!fits(want('10.0.0.1'), n, [holder('10.0.0.1')]));
  assert.ok(fits(want('10.0.0.2'), n, [holder('10.0.0.1')]));
  assert.ok(fits(want(undefined, 'UDP'), n, [holder(undefined)]));
  assert.ok(fits(want(), n, []));
  const hn = pod({ hostNetwork: true, containers: [{ name: 'c', ports: [{ containerPort: 80 }] }] });
  assert.ok(!fits(hn, n, [holder(undefined)]), 'the defaulted hostPort takes part');
});

test('deployment rollout bounds: 25%/25% defaults, surge rounds up, unavailable down, both 0 gives unavailable 1', () => {
  assert.equal(scaled('25%', 1, true), 1);
  assert.equal(scaled('25%', 1, false), 0);
  assert.equal(scaled(2, 1, false), 2);
  assert.deepEqual(rolloutBounds(undefined, 1), { type: 'RollingUpdate', maxSurge: 1, maxUnavailable: 0 });
  assert.deepEqual(rolloutBounds({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: '25%' } }, 1), { type: 'RollingUpdate', maxSurge: 0, maxUnavailable: 1 });
  assert.deepEqual(rolloutBounds({ type: 'RollingUpdate', rollingUpdate: { maxSurge: '50%', maxUnavailable: '50%' } }, 4), { type: 'RollingUpdate', maxSurge: 2, maxUnavailable: 2 });
  assert.equal(rolloutBounds({ type: 'Recreate' }, 1).type, 'Recreate');
});

test('restart of a one-replica host-port Deployment: blocked with a surge, possible with Recreate or a free second node', () => {
  const spec = (s: object) => ({ kind: 'Deployment', metadata: { name: 'd' }, spec: { template: { spec: { hostNetwork: true, containers: [{ name: 'c', ports: [{ containerPort: 10000 }] }] } }, ...s } });
  const p = podOf(spec({}))!;
  const a = node('a');
  const running = new Map([['a', [p.spec]]]);
  const rolling = restartCanStart(p, undefined, 1, [a], running, p.spec);
  assert.equal(rolling.ok, false);
  assert.match(rolling.why, /NodePorts/);
  assert.equal(restartCanStart(p, { type: 'Recreate' }, 1, [a], running, p.spec).ok, true);
  assert.equal(restartCanStart(p, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } }, 1, [a], running, p.spec).ok, true);
  assert.equal(restartCanStart(p, undefined, 1, [a, node('b')], running, p.spec).ok, true, 'the surge pod goes to the free node');
});
