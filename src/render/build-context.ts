import type { BundlePlan, BuildPlan } from '../plan/plan.js';
import { IMAGE_ROLES, type BinaryRole } from '../manifest/schema.js';
import type { RenderContext } from './context.js';
import { parseImageRef } from '../manifest/image-ref.js';
import { TOOL_VERSION } from '../version.js';

export const IMAGES_ARCHIVE_PATH = 'images/images.tar';

/** CloudCore/EdgeCore ports of the design documents (KubeEdge defaults). */
export const PORTS: RenderContext['ports'] = {
  cloudHubWebsocket: 10000,
  cloudHubQuic: 10001,
  cloudHubHttps: 10002,
  cloudStream: 10003,
  tunnel: 10004,
  kubeletMetrics: 10350,
  tunnelVirtual: 10351,
  metaServer: 10550,
};

/** EdgeCore settings every edge gets: EdgeMesh DNS, local-only metaServer and kubelet address. */
export const EDGE_SETTINGS: RenderContext['edge'] = {
  clusterDNS: '169.254.96.16',
  clusterDomain: 'cluster.local',
  metaServer: '127.0.0.1:10550',
  kubeletAddress: '127.0.0.1',
};

const UNAME: Record<string, string[]> = {
  amd64: ['x86_64', 'amd64'],
  arm64: ['aarch64', 'arm64'],
  arm: ['armv7l', 'armv7', 'armhf', 'armv8l'],
};

/** The template context for one bundle, from its plan alone (nothing downloaded). */
export function buildRenderContext(plan: BuildPlan, bundle: BundlePlan): RenderContext {
  const v = plan.versions;
  const kubeedge = v.kubeedge ?? '';
  const images = Object.fromEntries(IMAGE_ROLES.map((r) => [r, ''])) as Record<(typeof IMAGE_ROLES)[number], string>;
  // This side's images first; roles it does not ship come from the other side (see BuildPlan.imageRoles).
  for (const [role, ref] of Object.entries(plan.imageRoles)) images[role as keyof typeof images] = ref;
  for (const img of bundle.images) if (img.role) images[img.role] = img.ref;
  const files: RenderContext['files'] = { imagesArchive: bundle.images.length > 0 ? IMAGES_ARCHIVE_PATH : '', keadm: '' };
  const byRole = new Map<BinaryRole, string>();
  for (const b of bundle.binaries) if (b.role) byRole.set(b.role, b.dest);
  files.keadm = byRole.get('keadm') ?? '';
  for (const role of ['k3s', 'k3sInstallScript', 'edgecore', 'containerdTarball', 'runc', 'cniPluginsTarball'] as const) {
    const dest = byRole.get(role);
    if (dest) files[role] = dest;
  }
  const cloudcore = images.cloudcore || bundle.images.find((i) => i.component === 'kubeedge')?.ref || '';
  const repo = cloudcore ? parseImageRef(cloudcore) : undefined;
  const versionOf = (component: string, role: BinaryRole) => bundle.binaries.find((b) => b.role === role)?.version ?? v[component];
  return {
    side: bundle.side,
    arch: bundle.arch,
    platform: bundle.platformString,
    unameMachines: UNAME[bundle.arch] ?? [bundle.arch],
    bundleName: bundle.name,
    toolVersion: TOOL_VERSION,
    versions: {
      k3s: v.k3s ?? '',
      kubeedge,
      kubeedgeBare: kubeedge.replace(/^v/, ''),
      edgemesh: v.edgemesh ?? '',
      metricsServer: v.metricsServer ?? '',
      ...(versionOf('containerd', 'containerdTarball') ? { containerd: versionOf('containerd', 'containerdTarball') } : {}),
      ...(versionOf('runc', 'runc') ? { runc: versionOf('runc', 'runc') } : {}),
      ...(versionOf('cniPlugins', 'cniPluginsTarball') ? { cniPlugins: versionOf('cniPlugins', 'cniPluginsTarball') } : {}),
    },
    images: { ...images, all: bundle.images.map((i) => i.ref) },
    kubeedgeImageRepository: repo ? `${repo.registry}/${repo.repository.split('/').slice(0, -1).join('/')}` : 'docker.io/kubeedge',
    files,
    ports: { ...PORTS },
    edge: { ...EDGE_SETTINGS },
    runtimeBundled: Boolean(files.containerdTarball && files.runc && files.cniPluginsTarball),
  };
}
