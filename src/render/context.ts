import type { Arch } from '../platform.js';

/**
 * Everything a template in scripts-templates/ can use. Build-time facts only: install-time values
 * (advertise address, token, edge IPs, PSK) are arguments of the rendered scripts.
 * Paths under `files` are relative to the bundle's top directory.
 */
export interface RenderContext {
  side: 'cloud' | 'edge';
  /** `amd64` | `arm64` | `arm` */
  arch: Arch;
  /** `linux/arm64`, `linux/arm/v7` */
  platform: string;
  /** What `uname -m` prints on a matching host, for the arch preflight: `x86_64`, `aarch64`, `armv7l` */
  unameMachines: string[];
  /** `kubeprepare-cloud-v1.22.0-linux-arm64` */
  bundleName: string;
  /** KubePrepare version that built the bundle. */
  toolVersion: string;
  versions: {
    k3s: string; // v1.31.x+k3s1
    kubeedge: string; // v1.22.0
    /** kubeedge without the leading v: 1.22.0 (what `keadm --kubeedge-version` takes) */
    kubeedgeBare: string;
    edgemesh: string; // v1.17.0
    metricsServer: string; // v0.7.x
    containerd?: string;
    runc?: string;
    cniPlugins?: string;
  };
  /**
   * Canonical image references (docker.io/kubeedge/cloudcore:v1.22.0) by role, from this side or else the
   * other side's list (e.g. `mosquitto` on the cloud: the chart runs it on edges); empty string when the
   * manifest has no image for the role. `all` is exactly this bundle's archive.
   */
  images: {
    cloudcore: string;
    iptablesManager: string;
    controllerManager: string;
    admission: string;
    installationPackage: string;
    pause: string;
    mosquitto: string;
    edgemeshAgent: string;
    metricsServer: string;
    /** Every image in this side's archive. */
    all: string[];
  };
  /** Image repository prefix keadm is given (`docker.io/kubeedge` → keadm `--image-repository kubeedge`). */
  kubeedgeImageRepository: string;
  files: {
    /** images/images.tar — OCI layout + docker manifest.json; imported by `ctr -n k8s.io images import` / K3s agent/images */
    imagesArchive: string;
    keadm: string; // bin/keadm
    k3s?: string; // cloud: bin/k3s
    k3sInstallScript?: string; // cloud: scripts/k3s-install.sh
    edgecore?: string; // edge: bin/edgecore when the release ships it separately
    containerdTarball?: string; // edge: runtime/containerd-<v>-linux-<arch>.tar.gz (absent for arm: upstream ships none)
    runc?: string; // edge: runtime/runc
    cniPluginsTarball?: string; // edge: runtime/cni-plugins-linux-<arch>-<v>.tgz
  };
  ports: {
    cloudHubWebsocket: number; // 10000
    cloudHubQuic: number; // 10001
    cloudHubHttps: number; // 10002
    cloudStream: number; // 10003
    tunnel: number; // 10004
    kubeletMetrics: number; // 10350 (metrics-server → DNAT → cloudStream)
    tunnelVirtual: number; // 10351 (logs/exec → DNAT by iptables-manager)
    metaServer: number; // 10550
  };
  edge: {
    clusterDNS: string; // 169.254.96.16 (EdgeMesh DNS)
    clusterDomain: string; // cluster.local
    metaServer: string; // 127.0.0.1:10550
    kubeletAddress: string; // 127.0.0.1
  };
  /** True when the edge bundle carries containerd/runc/CNI for hosts without a runtime. */
  runtimeBundled: boolean;
}
