import { parseAllDocuments } from 'yaml';
import { UserError } from '../errors.js';
import type { Side } from '../manifest/schema.js';
import { parseImageRef } from '../manifest/image-ref.js';
import type { ImageNeed, RenderedFile } from './needs.js';

// The workloads of the rendered manifests, for the image-completeness check (`./needs.ts`): their pod
// specs and the nodes their node selection admits.

/** Labels of the two kinds of node, as far as node selection of the shipped workloads looks at them. */
export const NODE_LABELS: Record<Side, Record<string, string>> = {
  // K3s server node: node-role.kubernetes.io/control-plane=true and master=true (k3s-io/k3s
  // pkg/daemons/agent or pkg/node: "node-role.kubernetes.io/control-plane": "true"), kubelet's os/arch.
  cloud: { 'kubernetes.io/os': 'linux', 'node-role.kubernetes.io/control-plane': 'true', 'node-role.kubernetes.io/master': 'true' },
  // Edge node registered by edgecore: node-role.kubernetes.io/edge="" (kubeedge/kubeedge
  // common/constants/default.go @ v1.22.0: EdgeNodeRoleKey / EdgeNodeRoleValue).
  edge: { 'kubernetes.io/os': 'linux', 'node-role.kubernetes.io/edge': '' },
};

type Expr = { key?: string; operator?: string; values?: string[] };
interface PodSpec {
  nodeSelector?: Record<string, string>;
  affinity?: { nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms?: { matchExpressions?: Expr[] }[] } } };
  containers?: { name?: string; image?: string }[];
  initContainers?: { name?: string; image?: string }[];
}

function exprMatches(e: Expr, labels: Record<string, string>): boolean {
  const has = e.key !== undefined && Object.hasOwn(labels, e.key);
  const v = e.key !== undefined ? labels[e.key] : undefined;
  switch (e.operator) {
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
    case 'In':
      return has && (e.values ?? []).includes(v ?? '');
    case 'NotIn':
      return !has || !(e.values ?? []).includes(v ?? '');
    default:
      return false;
  }
}

/** Can a pod with this spec be placed on a node with these labels (nodeSelector and required node affinity)? */
export function admits(spec: PodSpec, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(spec.nodeSelector ?? {})) if (labels[k] !== v) return false;
  const terms = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  if (terms && terms.length > 0) return terms.some((t) => (t.matchExpressions ?? []).every((e) => exprMatches(e, labels)));
  return true;
}

function podSpecOf(doc: Record<string, unknown>): PodSpec | undefined {
  const spec = doc.spec as Record<string, unknown> | undefined;
  if (!spec) return undefined;
  switch (doc.kind) {
    case 'Pod':
      return spec as PodSpec;
    case 'CronJob':
      return ((spec.jobTemplate as { spec?: { template?: { spec?: PodSpec } } } | undefined)?.spec?.template?.spec);
    case 'Deployment':
    case 'DaemonSet':
    case 'StatefulSet':
    case 'ReplicaSet':
    case 'Job':
      return (spec.template as { spec?: PodSpec } | undefined)?.spec;
    default:
      return undefined;
  }
}

/*
 * The documents of a rendered YAML file, parsed once per content in this process: a build derives the
 * needs of every platform, and most files render the same for each (`build --dry-run --arch
 * amd64,arm64,arm`, 2026-12-02: YAML parsing took ~110 ms of its 0.79 s). Read-only: callers never change them.
 */
const parsedYaml = new Map<string, readonly unknown[]>();

function yamlDocuments(f: RenderedFile): readonly unknown[] {
  const hit = parsedYaml.get(f.content);
  if (hit) return hit;
  const docs = parseAllDocuments(f.content).map((d) => {
    if (d.errors.length > 0) throw new UserError(`${f.path}: not valid YAML: ${d.errors[0]!.message}`, { code: 'template', hint: 'fix the template of this manifest' });
    return d.toJS() as unknown;
  });
  if (parsedYaml.size >= 256) parsedYaml.clear();
  parsedYaml.set(f.content, docs);
  return docs;
}

/** Every container image of every workload in the rendered YAML files, on the sides its node selection admits. */
export function manifestNeeds(files: RenderedFile[]): ImageNeed[] {
  const out: ImageNeed[] = [];
  for (const f of files) {
    if (!/\.ya?ml$/.test(f.path)) continue;
    for (const d of yamlDocuments(f)) {
      const doc = d as Record<string, unknown> | null;
      if (!doc || typeof doc !== 'object') continue;
      const pod = podSpecOf(doc);
      if (!pod) continue;
      const meta = (doc.metadata ?? {}) as { name?: string; namespace?: string };
      const who = `${String(doc.kind)} ${meta.namespace ? `${meta.namespace}/` : ''}${meta.name ?? '?'} (${f.path})`;
      for (const c of [...(pod.initContainers ?? []), ...(pod.containers ?? [])]) {
        if (!c.image) {
          throw new UserError(`${who}: container ${c.name ?? '?'} has no image (the versions manifest lists none for it)`, { code: 'manifest', hint: 'list the image this container runs in the manifest, with its role' });
        }
        for (const side of ['cloud', 'edge'] as const) {
          if (admits(pod, NODE_LABELS[side])) out.push({ ref: parseImageRef(c.image).canonical, side, consumer: who });
        }
      }
    }
  }
  return out;
}
