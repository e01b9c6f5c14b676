import { UserError } from '../errors.js';
import { parseImageRef } from '../manifest/image-ref.js';
import type { Side } from '../manifest/schema.js';
import { cloudScriptFacts, edgeScriptFacts, type CloudScriptFacts, type EdgeScriptFacts } from './script-facts.js';
import { manifestNeeds } from './workloads.js';

export { scriptVariables, cloudScriptFacts, edgeScriptFacts, type CloudScriptFacts, type EdgeScriptFacts } from './script-facts.js';
export { NODE_LABELS, admits, manifestNeeds } from './workloads.js';

/**
 * Image completeness, computed: which images the nodes of each side will run, derived from what the
 * bundle itself ships and configures — the rendered manifests (every container of every workload, on
 * the side(s) its node selection admits), the CloudCore chart images for the `--set` values and
 * `--image-repository` of the rendered cloud install.sh, what K3s deploys with the components that
 * install.sh leaves on (its `--disable=` flags), what `keadm join` pulls (the rendered edge install.sh's
 * `--image-repository` and version) and the sandbox image edgecore is configured with. The upstream facts
 * are data below (the node labels in `./workloads.ts`), each with its citation (docs/upstream.md has the same lines).
 *
 * The build refuses a bundle that lacks a needed image (before anything is fetched), writes the list to
 * bundle.json (`needs`), and `verify` repeats the check on a tarball from bundle.json AND from the
 * bundle's own rendered files, so a hand-edited bundle.json cannot hide a gap.
 */
export interface ImageNeed {
  /** Canonical reference. */
  ref: string;
  side: Side;
  /** What runs it: `Deployment kube-system/metrics-server (manifests/metrics-server.yaml)`, `keadm join`, … */
  consumer: string;
  /**
   * Shipped so a site can turn the consumer on without a network, but not run by the installer as
   * configured: its absence is not an error.
   */
  optional?: boolean;
}

export interface RenderedFile {
  path: string;
  content: string;
}

// ---- upstream data -------------------------------------------------------------------------------

interface K3sImage {
  ref: string;
  consumer: string;
  /** K3s packaged components (`--disable` names) that must all be on for the image to be run. */
  when: string[];
}

/**
 * What K3s runs, per release, with the packaged component each image belongs to. Versions are those of
 * the release's image list (k3s-io/k3s scripts/airgap/image-list.txt / the release's k3s-images.txt).
 */
export const K3S_IMAGES: Record<string, K3sImage[]> = {
  'v1.31.14+k3s1': [
    // k3s-io/k3s pkg/cli/cmds/agent.go --pause-image (default DefaultPauseImage "rancher/mirrored-pause:3.6")
    { ref: 'docker.io/rancher/mirrored-pause:3.6', consumer: 'K3s containerd sandbox (pause) image of every pod on the cloud node (--pause-image default)', when: [] },
    // k3s-io/k3s manifests/coredns.yaml (Deployment coredns, image rancher/mirrored-coredns-coredns)
    { ref: 'docker.io/rancher/mirrored-coredns-coredns:1.13.1', consumer: 'K3s packaged component coredns (Deployment kube-system/coredns)', when: ['coredns'] },
    // k3s-io/k3s manifests/local-storage.yaml (Deployment local-path-provisioner; helperPod.yaml busybox)
    { ref: 'docker.io/rancher/local-path-provisioner:v0.0.32', consumer: 'K3s packaged component local-storage (Deployment kube-system/local-path-provisioner)', when: ['local-storage'] },
    { ref: 'docker.io/rancher/mirrored-library-busybox:1.36.1', consumer: 'K3s packaged component local-storage (local-path helper pod, ConfigMap local-path-config helperPod.yaml)', when: ['local-storage'] },
    // k3s-io/k3s manifests/traefik.yaml (HelmCharts traefik-crd and traefik), installed by helm-controller
    // jobs running helm.DefaultJobImage (klipper-helm; pkg/server/server.go, set at build with -X)
    { ref: 'docker.io/rancher/klipper-helm:v0.9.10-build20251111', consumer: 'K3s helm-controller install jobs of the packaged HelmCharts traefik-crd and traefik', when: ['traefik'] },
    { ref: 'docker.io/rancher/mirrored-library-traefik:2.11.24', consumer: 'K3s packaged component traefik (Deployment kube-system/traefik from HelmChart traefik)', when: ['traefik'] },
    // k3s-io/k3s pkg/cloudprovider/servicelb.go (DefaultLBImage): svclb DaemonSet pods of each LoadBalancer
    // Service — the packaged traefik Service is one
    { ref: 'docker.io/rancher/klipper-lb:v0.4.13', consumer: 'K3s packaged component servicelb (svclb DaemonSet of the traefik LoadBalancer Service)', when: ['servicelb', 'traefik'] },
    // k3s-io/k3s manifests/metrics-server/metrics-server-deployment.yaml
    { ref: 'docker.io/rancher/mirrored-metrics-server:v0.8.0', consumer: 'K3s packaged component metrics-server (Deployment kube-system/metrics-server)', when: ['metrics-server'] },
  ],
};

interface ChartImage {
  /** values.yaml key of the component (`cloudCore`, `mosquitto`, …). */
  key: string;
  repository: string;
  tag: string;
  enable: boolean;
  /** The side its affinity admits (values.yaml affinity: node-role.kubernetes.io/edge DoesNotExist / Exists). */
  side: Side;
  /** keadm rewrites repository to <--image-repository>/<name> and tag to v<version> (setsKeyImageRepositories). */
  keadmName?: string;
  /** Another values key that must hold for the template to render it. */
  extra?: { key: string; equals: string };
  /** Repository used instead when `<key>.framework` is nft (iptables-manager). */
  nftRepository?: string;
  /** Shipped so a site can enable it offline. */
  optional?: boolean;
}

/**
 * The CloudCore chart (kubeedge/kubeedge manifests/charts/cloudcore/values.yaml and templates/*.yaml
 * `image: {{ .Values.<key>.image.repository }}:{{ .Values.<key>.image.tag }}`), and keadm's rewrite of
 * it (keadm/cmd/keadm/app/cmd/helm/cloudcore.go appendDefaultSets, setsKeyImageTags,
 * setsKeyImageRepositories: cloudcore, iptables-manager and controller-manager only), at one release tag
 * (keadm sets every KubeEdge image's tag to --kubeedge-version).
 */
const chart122 = (tag: string): ChartImage[] => [
    { key: 'cloudCore', repository: 'kubeedge/cloudcore', tag, enable: true, side: 'cloud', keadmName: 'cloudcore' },
    {
      key: 'iptablesManager',
      repository: 'kubeedge/iptables-manager',
      nftRepository: 'kubeedge/iptables-manager-nft',
      tag,
      enable: true,
      side: 'cloud',
      keadmName: 'iptables-manager',
      // templates/daemonset_iptablesmanager.yaml: {{- if and (.Values.iptablesManager.enable) (eq .Values.iptablesManager.mode "external") }}
      extra: { key: 'iptablesManager.mode', equals: 'external' },
    },
    { key: 'controllerManager', repository: 'kubeedge/controller-manager', tag, enable: false, side: 'cloud', keadmName: 'controller-manager', optional: true },
    { key: 'admission', repository: 'kubeedge/admission', tag, enable: false, side: 'cloud', optional: true },
    { key: 'mosquitto', repository: 'eclipse-mosquitto', tag: '1.6.15', enable: true, side: 'edge' },
];

/** The chart is the same at v1.22.0 and v1.22.2 (`git diff v1.22.0 v1.22.2 -- manifests` is empty); only the tags differ. */
export const KUBEEDGE_CHART: Record<string, ChartImage[]> = { 'v1.22.0': chart122('v1.22.0'), 'v1.22.2': chart122('v1.22.2') };

/** edgecore's podSandboxImage default (staging/src/github.com/kubeedge/api/apis/common/constants/default.go DefaultPodSandboxImage). */
export const EDGECORE_SANDBOX_IMAGE: Record<string, string> = { 'v1.22.0': 'kubeedge/pause:3.6', 'v1.22.2': 'kubeedge/pause:3.6' };

/** keadm join pulls EdgeSet: installation-package only (keadm/cmd/keadm/app/cmd/util/image.go edgeComponentSet; edge/join_others.go pullImagesAndCopyResources). */
export const KEADM_JOIN_IMAGES: Record<string, string[]> = { 'v1.22.0': ['kubeedge/installation-package'], 'v1.22.2': ['kubeedge/installation-package'] };

// ---- derivations ----------------------------------------------------------------------------------

const canonical = (ref: string) => parseImageRef(ref).canonical;
const withRepo = (repo: string, name: string) => (repo ? `${repo.replace(/\/$/, '')}/${name}` : `kubeedge/${name}`);

/** Images of the CloudCore chart as keadm init installs it with these values. */
export function chartNeeds(facts: CloudScriptFacts): ImageNeed[] {
  const chart = KUBEEDGE_CHART[facts.kubeedgeVersion];
  if (!chart) throw new UserError(`no CloudCore chart image data for KubeEdge ${facts.kubeedgeVersion} in src/bundle/needs.ts`, { code: 'manifest', hint: `add KUBEEDGE_CHART['${facts.kubeedgeVersion}'] from that release's manifests/charts/cloudcore/values.yaml` });
  const out: ImageNeed[] = [];
  for (const c of chart) {
    const set = (k: string) => facts.sets[`${c.key}.${k}`];
    const enabled = (set('enable') ?? String(c.enable)) === 'true' && (!c.extra || (facts.sets[c.extra.key] ?? (c.key === 'iptablesManager' ? 'external' : '')) === c.extra.equals);
    if (!enabled && !c.optional) continue;
    let repo = c.keadmName && facts.imageRepository ? withRepo(facts.imageRepository, c.keadmName) : c.repository;
    if (c.nftRepository && set('framework') === 'nft') repo = c.nftRepository;
    repo = set('image.repository') ?? repo;
    const tag = set('image.tag') ?? (c.keadmName ? facts.kubeedgeVersion : c.tag);
    out.push({
      ref: canonical(`${repo}:${tag}`),
      side: c.side,
      consumer: enabled ? `CloudCore chart ${c.key} (keadm init)` : `CloudCore chart ${c.key} (off; shipped so a site can enable it offline: keadm upgrade cloud --reuse-values --set ${c.key}.enable=true)`,
      ...(enabled ? {} : { optional: true }),
    });
  }
  return out;
}

export function k3sNeeds(k3sVersion: string, disabled: string[]): ImageNeed[] {
  const list = K3S_IMAGES[k3sVersion];
  if (!list) throw new UserError(`no image data for K3s ${k3sVersion} in src/bundle/needs.ts`, { code: 'manifest', hint: `add K3S_IMAGES['${k3sVersion}'] from that release's k3s-images.txt and packaged manifests` });
  return list.filter((i) => i.when.every((c) => !disabled.includes(c))).map((i) => ({ ref: i.ref, side: 'cloud', consumer: i.consumer }));
}

export function edgeNeeds(facts: EdgeScriptFacts): ImageNeed[] {
  const join = KEADM_JOIN_IMAGES[facts.kubeedgeVersion];
  const sandbox = EDGECORE_SANDBOX_IMAGE[facts.kubeedgeVersion];
  if (!join || !sandbox) throw new UserError(`no keadm join / edgecore image data for KubeEdge ${facts.kubeedgeVersion} in src/bundle/needs.ts`, { code: 'manifest', hint: 'add KEADM_JOIN_IMAGES and EDGECORE_SANDBOX_IMAGE for that release' });
  const out: ImageNeed[] = [];
  for (const name of join) {
    // keadm Set.Current: <image-repository>/<name without its first path element>:<version>
    const base = name.split('/').slice(1).join('/');
    out.push({ ref: canonical(`${facts.imageRepository ? `${facts.imageRepository.replace(/\/$/, '')}/${base}` : name}:${facts.kubeedgeVersion}`), side: 'edge', consumer: 'keadm join (pulls it and copies edgecore out of it)' });
  }
  out.push({ ref: canonical(sandbox), side: 'edge', consumer: "edgecore's podSandboxImage (edged sandbox of every pod)" });
  if (facts.sandboxImage) out.push({ ref: canonical(facts.sandboxImage), side: 'edge', consumer: 'install.sh sandbox image (bundled containerd sandbox_image; tagged as the host containerd\'s)' });
  return out;
}


/** All the needs, both sides, from the rendered files of the two sides and the K3s version. */
export function deriveNeeds(cloudFiles: RenderedFile[], edgeFiles: RenderedFile[], k3sVersion: string): ImageNeed[] {
  const cloudScript = cloudFiles.find((f) => f.path === 'install.sh');
  const edgeScript = edgeFiles.find((f) => f.path === 'install.sh');
  const out: ImageNeed[] = [...manifestNeeds(cloudFiles.filter((f) => f.path.startsWith('manifests/'))), ...manifestNeeds(edgeFiles.filter((f) => f.path.startsWith('manifests/')))];
  if (cloudScript) {
    const facts = cloudScriptFacts(cloudScript.content);
    out.push(...chartNeeds(facts), ...k3sNeeds(k3sVersion, facts.k3sDisabled));
  }
  if (edgeScript) out.push(...edgeNeeds(edgeScriptFacts(edgeScript.content)));
  return dedupeNeeds(out);
}

/** One entry per (side, ref, consumer); a required entry wins over an optional one for the same image. */
export function dedupeNeeds(needs: ImageNeed[]): ImageNeed[] {
  const seen = new Map<string, ImageNeed>();
  for (const n of needs) {
    const k = `${n.side}\0${n.ref}\0${n.consumer}`;
    if (!seen.has(k)) seen.set(k, n);
  }
  const required = new Set([...seen.values()].filter((n) => !n.optional).map((n) => `${n.side}\0${n.ref}`));
  return [...seen.values()].filter((n) => !n.optional || !required.has(`${n.side}\0${n.ref}`)).sort((a, b) => (a.side + a.ref + a.consumer < b.side + b.ref + b.consumer ? -1 : 1));
}

/** The needed images of `side` that `shipped` lacks, each with what needs it. */
export function missingNeeds(needs: ImageNeed[], side: Side, shipped: Iterable<string>): { ref: string; consumers: string[] }[] {
  const have = new Set([...shipped].map(canonical));
  const gaps = new Map<string, string[]>();
  for (const n of needs) {
    if (n.side !== side || n.optional || have.has(n.ref)) continue;
    gaps.set(n.ref, [...(gaps.get(n.ref) ?? []), n.consumer]);
  }
  return [...gaps].map(([ref, consumers]) => ({ ref, consumers }));
}

/** Shipped images of `side` that nothing needs (not even optionally). */
export function unneededImages(needs: ImageNeed[], side: Side, shipped: string[]): string[] {
  const wanted = new Set(needs.filter((n) => n.side === side).map((n) => n.ref));
  return shipped.map(canonical).filter((r) => !wanted.has(r));
}

/** A gap found in a scanned bundle (verify): a needed image its archive does not hold. */
export interface NeedGap {
  ref: string;
  consumers: string[];
}

/**
 * verify's completeness check: the needs bundle.json records for this side, plus those derived again from
 * the bundle's own rendered files (install.sh, manifests/*.yaml) and its K3s version — so that removing
 * an entry from bundle.json's `needs` hides nothing — against the images the archive holds.
 */
export function bundleGaps(opts: { side: Side; recorded: ImageNeed[] | undefined; kept: Map<string, Buffer>; k3sVersion: string | undefined; shipped: string[] }): NeedGap[] {
  const files: RenderedFile[] = [...opts.kept].filter(([p]) => p === 'install.sh' || p.startsWith('manifests/')).map(([path, b]) => ({ path, content: b.toString('utf8') }));
  const derived = opts.side === 'cloud' ? deriveNeeds(files, [], opts.k3sVersion ?? '') : deriveNeeds([], files, '');
  const all = dedupeNeeds([...(opts.recorded ?? []).filter((n) => n && typeof n.ref === 'string'), ...derived]);
  return missingNeeds(all, opts.side, opts.shipped);
}
