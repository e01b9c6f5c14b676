// A small model of kube-scheduler's filter plugins and of the controllers' pod templates, for tests that
// check scheduling on objects (rendered manifests, the chart fixture) instead of on command lines.
// Each rule follows Kubernetes v1.31 source; the citations are in docs/upstream.md, "Kubernetes semantics".
// Not modelled: resources, volumes, inter-pod (anti-)affinity, topology spread, matchFields.

export type TaintEffect = 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
export interface Taint { key: string; value?: string; effect: TaintEffect }
export interface Toleration { key?: string; operator?: 'Exists' | 'Equal'; value?: string; effect?: TaintEffect | ''; tolerationSeconds?: number }
export interface NodeSelectorRequirement { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | 'Gt' | 'Lt'; values?: string[] }
export interface NodeSelectorTerm { matchExpressions?: NodeSelectorRequirement[] }
export interface ContainerPort { containerPort: number; hostPort?: number; hostIP?: string; protocol?: string; name?: string }
export interface Container { name: string; image?: string; ports?: ContainerPort[] }
export interface PodSpec {
  nodeName?: string;
  nodeSelector?: Record<string, string>;
  affinity?: { nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms: NodeSelectorTerm[] } } };
  tolerations?: Toleration[];
  hostNetwork?: boolean;
  containers: Container[];
  initContainers?: Container[];
}
export interface Node { name: string; labels: Record<string, string>; taints?: Taint[] }
/** A pod the model places: the workload it comes from and its (defaulted) spec. */
export interface Pod { name: string; kind: string; spec: PodSpec }

/** SetDefaults_Pod: with hostNetwork, every container (and init container) port without a hostPort gets hostPort = containerPort. */
export function defaultPodSpec(spec: PodSpec): PodSpec {
  const out: PodSpec = structuredClone(spec);
  if (out.hostNetwork) {
    for (const c of [...out.containers, ...(out.initContainers ?? [])]) {
      for (const p of c.ports ?? []) if (!p.hostPort) p.hostPort = p.containerPort;
    }
  }
  return out;
}

/** The tolerations the DaemonSet controller adds to every pod it creates (AddOrUpdateDaemonPodTolerations). */
export function daemonSetTolerations(spec: PodSpec): Toleration[] {
  const t: Toleration[] = [
    { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' },
    { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' },
    { key: 'node.kubernetes.io/disk-pressure', operator: 'Exists', effect: 'NoSchedule' },
    { key: 'node.kubernetes.io/memory-pressure', operator: 'Exists', effect: 'NoSchedule' },
    { key: 'node.kubernetes.io/pid-pressure', operator: 'Exists', effect: 'NoSchedule' },
    { key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' },
  ];
  if (spec.hostNetwork) t.push({ key: 'node.kubernetes.io/network-unavailable', operator: 'Exists', effect: 'NoSchedule' });
  return t;
}

export interface WorkloadObject { kind?: string; metadata?: { name?: string; namespace?: string }; spec?: object }
const TEMPLATED = new Set(['Deployment', 'DaemonSet', 'StatefulSet', 'ReplicaSet', 'Job']);

/** The pod a workload object's controller creates (null for objects that create no pods), defaulted as the API server does. */
export function podOf(obj: WorkloadObject): Pod | null {
  const kind = obj.kind ?? '';
  let spec: PodSpec | undefined;
  if (kind === 'Pod') spec = obj.spec as PodSpec | undefined;
  else if (TEMPLATED.has(kind)) spec = (obj.spec as { template?: { spec?: PodSpec } } | undefined)?.template?.spec;
  if (!spec) return null;
  const s = defaultPodSpec(spec);
  if (kind === 'DaemonSet') s.tolerations = mergeTolerations(s.tolerations ?? [], daemonSetTolerations(s));
  const ns = obj.metadata?.namespace ? `${obj.metadata.namespace}/` : '';
  return { name: `${kind}/${ns}${obj.metadata?.name ?? '?'}`, kind, spec: s };
}

// AddOrUpdateTolerationInPodSpec: a toleration with the same key, operator, value and effect is not added twice.
function mergeTolerations(have: Toleration[], add: Toleration[]): Toleration[] {
  const out = [...have];
  for (const a of add) {
    if (!out.some((t) => t.key === a.key && (t.operator ?? 'Equal') === a.operator && (t.value ?? '') === (a.value ?? '') && (t.effect ?? '') === a.effect)) out.push(a);
  }
  return out;
}

/** Toleration.ToleratesTaint: effect and key must match unless empty; Exists matches any value, Equal (or empty) the same value. */
export function tolerates(t: Toleration, taint: Taint): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  if (t.key && t.key !== taint.key) return false;
  const op = t.operator ?? 'Equal';
  if (op === 'Exists') return true;
  if (op === 'Equal') return (t.value ?? '') === (taint.value ?? '');
  return false;
}

function requirementMatches(r: NodeSelectorRequirement, labels: Record<string, string>): boolean {
  const has = Object.hasOwn(labels, r.key);
  const v = labels[r.key];
  const values = r.values ?? [];
  switch (r.operator) {
    case 'In': return has && values.includes(v!);
    case 'NotIn': return !has || !values.includes(v!);
    case 'Exists': return has;
    case 'DoesNotExist': return !has;
    case 'Gt':
    case 'Lt': {
      if (!has || values.length !== 1 || !/^-?\d+$/.test(v!) || !/^-?\d+$/.test(values[0]!)) return false;
      return r.operator === 'Gt' ? Number(v) > Number(values[0]) : Number(v) < Number(values[0]);
    }
    default: return false;
  }
}

/** NodeAffinity filter: nodeSelector (every pair) AND required node affinity (terms ORed, expressions ANDed; an empty term matches nothing). */
export function affinityMatches(spec: PodSpec, node: Node): boolean {
  for (const [k, v] of Object.entries(spec.nodeSelector ?? {})) if (node.labels[k] !== v) return false;
  const req = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  if (!req) return true;
  return req.nodeSelectorTerms.some((term) => (term.matchExpressions ?? []).length > 0 && term.matchExpressions!.every((r) => requirementMatches(r, node.labels)));
}

/** The hostPorts a pod holds (NodePorts' getContainerPorts: regular containers, hostPort > 0), sanitized: IP "" → 0.0.0.0, protocol "" → TCP. */
export function hostPorts(spec: PodSpec): { ip: string; protocol: string; port: number }[] {
  return spec.containers.flatMap((c) => c.ports ?? [])
    .filter((p) => (p.hostPort ?? 0) > 0)
    .map((p) => ({ ip: p.hostIP || '0.0.0.0', protocol: p.protocol || 'TCP', port: p.hostPort! }));
}

// HostPortInfo.CheckConflict: 0.0.0.0 conflicts with any IP on the same protocol/port; another IP with itself and 0.0.0.0.
function portConflict(want: { ip: string; protocol: string; port: number }, used: { ip: string; protocol: string; port: number }[]): boolean {
  return used.some((u) => u.protocol === want.protocol && u.port === want.port && (want.ip === '0.0.0.0' || u.ip === '0.0.0.0' || u.ip === want.ip));
}

/**
 * The filter plugins in order; returns why the pod cannot go on the node ([] = it fits).
 * `podsOnNode` are the specs already bound to that node (their host ports are taken).
 */
export function unschedulableReasons(pod: Pod, node: Node, podsOnNode: PodSpec[] = []): string[] {
  const reasons: string[] = [];
  const s = pod.spec;
  if (s.nodeName && s.nodeName !== node.name) reasons.push(`NodeName: pod is bound to ${s.nodeName}`);
  if (!affinityMatches(s, node)) reasons.push("NodeAffinity: node didn't match Pod's node affinity/selector");
  const untolerated = (node.taints ?? [])
    .filter((t) => t.effect === 'NoSchedule' || t.effect === 'NoExecute')
    .find((t) => !(s.tolerations ?? []).some((tol) => tolerates(tol, t)));
  if (untolerated) reasons.push(`TaintToleration: node had untolerated taint {${untolerated.key}: ${untolerated.value ?? ''}}:${untolerated.effect}`);
  const used = podsOnNode.flatMap((p) => hostPorts(p));
  const clash = hostPorts(s).filter((w) => portConflict(w, used));
  if (clash.length > 0) reasons.push(`NodePorts: node didn't have free ports for the requested pod ports (${clash.map((c) => `${c.protocol}/${c.port}`).join(', ')})`);
  return reasons;
}

export const fits = (pod: Pod, node: Node, podsOnNode: PodSpec[] = []): boolean => unschedulableReasons(pod, node, podsOnNode).length === 0;

/** intstr.GetScaledValueFromIntOrPercent: "n%" of total, rounded up or down; an int as is. */
export function scaled(v: number | string, total: number, roundUp: boolean): number {
  if (typeof v === 'number') return v;
  const m = /^(\d+)%$/.exec(v);
  if (!m) throw new Error(`not an int or percentage: ${v}`);
  const x = (Number(m[1]) * total) / 100;
  return roundUp ? Math.ceil(x) : Math.floor(x);
}

export interface DeploymentStrategy { type?: 'RollingUpdate' | 'Recreate'; rollingUpdate?: { maxSurge?: number | string; maxUnavailable?: number | string } }

/** SetDefaults_Deployment (type RollingUpdate, 25%/25%) then ResolveFenceposts (surge rounds up, unavailable down; both 0 → unavailable 1). */
export function rolloutBounds(strategy: DeploymentStrategy | undefined, replicas: number): { type: 'RollingUpdate' | 'Recreate'; maxSurge: number; maxUnavailable: number } {
  const type = strategy?.type ?? 'RollingUpdate';
  if (type === 'Recreate') return { type, maxSurge: 0, maxUnavailable: replicas };
  const surge = scaled(strategy?.rollingUpdate?.maxSurge ?? '25%', replicas, true);
  let unavailable = scaled(strategy?.rollingUpdate?.maxUnavailable ?? '25%', replicas, false);
  if (surge === 0 && unavailable === 0) unavailable = 1;
  return { type, maxSurge: surge, maxUnavailable: unavailable };
}

/**
 * Whether the first step of a restart (rollout of a new template) of a Deployment whose `replicas` pods run
 * on `nodes` can happen: Recreate scales the old pods to 0 first (rolloutRecreate); RollingUpdate may kill
 * `maxUnavailable` old pods (reconcileOldReplicaSets: minAvailable = replicas - maxUnavailable), and else needs
 * a surge pod to fit beside the old ones. `running` maps node name → pod specs bound there (old pods included).
 */
export function restartCanStart(pod: Pod, strategy: DeploymentStrategy | undefined, replicas: number, nodes: Node[], running: Map<string, PodSpec[]>, old: PodSpec): { ok: boolean; why: string } {
  const b = rolloutBounds(strategy, replicas);
  const without = (n: Node) => { const l = [...(running.get(n.name) ?? [])]; const i = l.indexOf(old); if (i >= 0) l.splice(i, 1); return l; };
  if (b.type === 'Recreate' || b.maxUnavailable >= 1) {
    const n = nodes.find((x) => fits(pod, x, without(x)));
    return n ? { ok: true, why: `${b.type}: an old pod goes first; the new pod fits on ${n.name}` } : { ok: false, why: `${b.type}: no node fits even with the old pod gone` };
  }
  if (b.maxSurge < 1) return { ok: false, why: 'RollingUpdate with neither surge nor unavailability' };
  const n = nodes.find((x) => fits(pod, x, running.get(x.name) ?? []));
  if (n) return { ok: true, why: `RollingUpdate: the surge pod fits on ${n.name}` };
  return { ok: false, why: `RollingUpdate maxSurge=${b.maxSurge} maxUnavailable=0: the surge pod fits no node: ${nodes.map((x) => `${x.name}: ${unschedulableReasons(pod, x, running.get(x.name) ?? []).join('; ')}`).join(' | ')}` };
}
