import type { FetchedBinary } from '../binaries/fetch.js';
import type { ImageArchiveResult } from '../engines/types.js';
import type { Side } from '../manifest/schema.js';

/**
 * What each install step writes to the host, per target path: bundle.json `disk` states it, and the same
 * lines go to `disk.tsv`, which install.sh reads for its free-space preflight (check_disk in
 * shell-lib.hbs: `df -P -k` of the nearest existing parent of each path, summed per filesystem).
 *
 * Sizes the build cannot know exactly are estimated from the compressed sizes it does know: unpacked
 * image layers (containerd's snapshots) and archives extracted on the host are counted as
 * UNPACK_FACTOR times their compressed bytes (gzip on binaries and distro files typically gives 2-3x).
 */
export const UNPACK_FACTOR = 3;
export const DISK_FILE = 'disk.tsv';

export interface DiskStep {
  /** Install step (install.sh passes the steps it is about to run). */
  step: string;
  /** Absolute target path on the host. */
  path: string;
  bytes: number;
  what: string;
}

export function diskSteps(side: Side, binaries: FetchedBinary[], images: Pick<ImageArchiveResult, 'size' | 'uniqueBlobBytes' | 'images'> | undefined): DiskStep[] {
  const bin = (role: string) => binaries.find((b) => b.binary.role === role);
  const steps: DiskStep[] = [];
  const add = (step: string, path: string, bytes: number, what: string) => {
    if (bytes > 0) steps.push({ step, path, bytes: Math.ceil(bytes), what });
  };
  const imageStore = (images?.uniqueBlobBytes ?? 0) * (1 + UNPACK_FACTOR);
  const keadm = bin('keadm');
  if (side === 'cloud') {
    const k3s = bin('k3s');
    add('k3s', '/usr/local/bin/k3s', k3s?.size ?? 0, 'K3s binary');
    add('k3s', '/var/lib/rancher/k3s/data', (k3s?.size ?? 0) * UNPACK_FACTOR, 'userspace K3s extracts from its binary (estimate)');
    add('images', '/var/lib/rancher/k3s/agent/images', images?.size ?? 0, 'copy of images/images.tar K3s imports');
    add('images', '/var/lib/rancher/k3s/agent/containerd', imageStore, 'image blobs + unpacked layers in K3s containerd (estimate)');
    add('keadm', '/usr/local/bin/keadm', keadm?.size ?? 0, 'keadm binary');
  } else {
    add('images', '/var/lib/containerd', imageStore, 'image blobs + unpacked layers in containerd (estimate)');
    add('join', '/usr/local/bin/keadm', keadm?.size ?? 0, 'keadm binary');
    const pkg = images?.images.find((i) => /\/installation-package:/.test(i.ref));
    add('join', '/usr/local/bin/edgecore', (pkg?.size ?? 0) * UNPACK_FACTOR, 'edgecore keadm join copies out of installation-package (estimate)');
    add('runtime', '/usr/local', (bin('containerdTarball')?.size ?? 0) * UNPACK_FACTOR, 'containerd release extracted (estimate)');
    add('runtime', '/usr/local/sbin/runc', bin('runc')?.size ?? 0, 'runc binary');
    add('runtime', '/opt/cni/bin', (bin('cniPluginsTarball')?.size ?? 0) * UNPACK_FACTOR, 'CNI plugins extracted (estimate)');
  }
  return steps;
}

/** disk.tsv: `step<TAB>path<TAB>KiB<TAB>what`, one line per step and path. */
export function diskTsv(steps: DiskStep[]): string {
  return [
    '# step\tpath\tKiB\twhat (written by kubeprepare build; read by install.sh check_disk)',
    ...steps.map((s) => `${s.step}\t${s.path}\t${Math.ceil(s.bytes / 1024)}\t${s.what.replace(/[\t\n]/g, ' ')}`),
    '',
  ].join('\n');
}
