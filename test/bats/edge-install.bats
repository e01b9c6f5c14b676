#!/usr/bin/env bats
# edge/install.sh against PATH stubs (keadm, ctr, containerd, systemctl, timeout) and a fake root.
load helpers/common

TOKEN=$(printf 'a%.0s' {1..64}).eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJl

setup() { kp_setup edge; }

edge_install() { "$BUNDLE/install.sh" --cloud 192.168.10.10:10000 --token "$TOKEN" --node-name edge-01 "$@"; }

# an existing containerd: binary, socket and (optionally) a config with the given SystemdCgroup
existing_containerd() {
  mkdir -p "$KP_SYSROOT/usr/bin" "$KP_SYSROOT/etc/containerd"
  printf '#!/bin/sh\nexec "%s/containerd" "$@"\n' "$KP_STUB_DIR" >"$KP_SYSROOT/usr/bin/containerd"
  chmod +x "$KP_SYSROOT/usr/bin/containerd"
  if [[ -n ${1:-} ]]; then
    printf 'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n  SystemdCgroup = %s\n' "$1" \
      >"$KP_SYSROOT/etc/containerd/config.toml"
  fi
  kp_make_socket "$KP_SYSROOT/run/containerd/containerd.sock"
}
kp_make_socket() { . "$KP_STUB_DIR/_lib.sh"; kp_make_socket "$@"; }

# ---- bad arguments ----
@test "edge install: --cloud and --token are required" {
  run "$BUNDLE/install.sh" --token "$TOKEN"
  status_is 2
  output_has "--cloud is required"
  run "$BUNDLE/install.sh" --cloud 192.168.10.10:10000
  status_is 2
  output_has "--token is required"
  [[ ! -s $KP_STUB_LOG ]]
}

@test "edge install: bad cloud address or port" {
  for c in 192.168.10.10 192.168.10.300:10000 cloud.example:10000 127.0.0.1:10000 192.168.10.10:0 192.168.10.10:65536 192.168.10.10:10x 192.168.10.10:; do
    run "$BUNDLE/install.sh" --cloud "$c" --token "$TOKEN"
    status_is 2
  done
  run "$BUNDLE/install.sh" --cloud 192.168.10.10:99999 --token "$TOKEN"
  output_has "'99999' is not a TCP port"
  [[ ! -s $KP_STUB_LOG ]]
}

@test "edge install: bad token, bad node name, bad cgroup driver, unknown flag" {
  for t in short "$(printf 'g%.0s' {1..64}).a.b.c" "$(printf 'a%.0s' {1..64})" "$(printf 'a%.0s' {1..64}).a.b" "$TOKEN x"; do
    run "$BUNDLE/install.sh" --cloud 192.168.10.10:10000 --token "$t"
    status_is 2
    output_has "not a KubeEdge token"
  done
  run edge_install --node-name EDGE_01
  status_is 2
  run "$BUNDLE/install.sh" --cloud 192.168.10.10:10000 --token "$TOKEN" --cgroup-driver docker
  status_is 2
  output_has "must be systemd or cgroupfs"
  run edge_install --unknown
  status_is 2
  output_has "unknown argument: --unknown"
  [[ ! -s $KP_STUB_LOG ]]
}

@test "edge install: the token never appears in the output or the log" {
  run edge_install
  status_is 0
  [[ $output != *"$TOKEN"* ]]
  file_lacks "$KP_SYSROOT/var/log/kubeprepare-install.log" "$TOKEN"
  output_has "--token ***"
}

# ---- preflight refusals ----
@test "edge install: an unreachable cloud is a clear preflight error" {
  KP_FAKE_UNREACHABLE=10000 run edge_install
  status_is 3
  output_has "cannot connect to CloudHub at 192.168.10.10:10000"
  refute_mutations
  KP_FAKE_UNREACHABLE=10002 run edge_install
  status_is 3
  output_has "not on 10002"
}

@test "edge install: an unreachable tunnel port only warns" {
  KP_FAKE_UNREACHABLE=10004 run edge_install
  status_is 0
  output_has "tunnel port 192.168.10.10:10004 is not reachable"
}

@test "edge install: a leftover /etc/kubeedge without config is refused" {
  mkdir -p "$KP_SYSROOT/etc/kubeedge/ca"
  touch "$KP_SYSROOT/etc/kubeedge/ca/rootCA.crt"
  run edge_install
  status_is 3
  output_has "is not empty"
  refute_mutations
}

@test "edge install: an existing containerd with CRI disabled is refused" {
  existing_containerd false
  printf 'disabled_plugins = ["cri"]\n' >>"$KP_SYSROOT/etc/containerd/config.toml"
  run edge_install
  status_is 3
  output_has "CRI plugin disabled"
  refute_mutations
}

@test "edge install: a --cgroup-driver that contradicts the existing containerd is refused" {
  existing_containerd false
  run edge_install --cgroup-driver systemd
  status_is 3
  output_has "does not match the existing containerd"
  refute_mutations
}

@test "edge install: joined to another cloud or another edgecore version is refused" {
  run edge_install
  status_is 0
  run "$BUNDLE/install.sh" --cloud 192.168.10.99:10000 --token "$TOKEN" --node-name edge-01
  status_is 3
  output_has "already joined the cloud at 192.168.10.10:10000"
  printf '#!/bin/sh\necho "KubeEdge v1.21.0"\n' >"$KP_SYSROOT/usr/local/bin/edgecore"
  run edge_install
  status_is 3
  output_has "edgecore v1.21.0 is installed"
}

# ---- dry run ----
@test "edge install: --dry-run changes nothing" {
  run edge_install --dry-run
  status_is 0
  output_has "[DRY-RUN]"
  output_has "keadm join --kubeedge-version $(kp_ctx versions.kubeedgeBare) --cloudcore-ipport 192.168.10.10:10000 --token ***"
  refute_mutations
  [[ -z $(find "$KP_SYSROOT" -mindepth 1 -print -quit) ]] || { find "$KP_SYSROOT" >&2; false; }
  # no connection: the cloud probes are printed, not made (the cloud need not be up)
  output_has "probe TCP 192.168.10.10:10000 (CloudHub), 192.168.10.10:10002 (certificates) and 192.168.10.10:10004"
  not_called "timeout"
  KP_FAKE_UNREACHABLE="10000 10002 10004" run edge_install --dry-run
  status_is 0
}

@test "edge install: --check-cloud probes the cloud and exits, installing nothing" {
  run "$BUNDLE/install.sh" --cloud 192.168.10.10:10000 --check-cloud
  status_is 0
  called "timeout 5 bash -c exec\ 3\<\>/dev/tcp/192.168.10.10/10000"
  called "/dev/tcp/192.168.10.10/10002"
  called "/dev/tcp/192.168.10.10/10004"
  output_has "the cloud node answers; nothing was changed"
  refute_mutations
  not_called "keadm"
  not_called "ctr"
  KP_FAKE_UNREACHABLE=10000 run "$BUNDLE/install.sh" --cloud 192.168.10.10:10000 --check-cloud
  status_is 3
  output_has "cannot connect to CloudHub at 192.168.10.10:10000"
}

# ---- installs ----
@test "edge install: no runtime -> bundled containerd (systemd cgroups), images, join, edgecore.yaml" {
  run edge_install
  status_is 0
  # runtime from the bundle
  [[ -x $KP_SYSROOT/usr/local/bin/containerd && -x $KP_SYSROOT/usr/local/bin/ctr && -x $KP_SYSROOT/usr/local/sbin/runc ]]
  [[ -x $KP_SYSROOT/opt/cni/bin/bridge && -f $KP_SYSROOT/etc/cni/net.d/10-kubeprepare-bridge.conflist ]]
  node -e 'JSON.parse(require("fs").readFileSync(process.argv[1]))' "$KP_SYSROOT/etc/cni/net.d/10-kubeprepare-bridge.conflist"
  # containerd 2.x's default config (version 3) with the two keys the installer edits
  grep -qx 'version = 3' "$KP_SYSROOT/etc/containerd/config.toml"
  grep -Eqx '[[:space:]]+SystemdCgroup = true' "$KP_SYSROOT/etc/containerd/config.toml"
  grep -Fqx "      sandbox = '$(kp_ctx images.pause)'" "$KP_SYSROOT/etc/containerd/config.toml"
  grep -q 'ExecStart=/usr/local/bin/containerd' "$KP_SYSROOT/etc/systemd/system/containerd.service"
  grep -qx 'RUNTIME_INSTALLED_BY=kubeprepare' "$KP_SYSROOT/etc/kubeprepare/edge.env"
  grep -qx '/usr/local/sbin/runc' "$KP_SYSROOT/etc/kubeprepare/edge-runtime-files"
  called "systemctl enable --now containerd"
  # images: imported once, with the bundle's platform
  called "-n k8s.io images import --platform linux/"
  called "$BUNDLE/images/images.tar"
  # join with the detected settings
  called "keadm join --kubeedge-version $(kp_ctx versions.kubeedgeBare) --cloudcore-ipport 192.168.10.10:10000 --token $TOKEN --edgenode-name edge-01 --remote-runtime-endpoint unix://$KP_SYSROOT/run/containerd/containerd.sock --cgroupdriver systemd --image-repository docker.io/kubeedge"
  # the node registers with the edge taint (docs/scheduling.md)
  called "--image-repository docker.io/kubeedge --set Modules.Edged.TailoredKubeletConfig.RegisterWithTaints\\[0\\].Key=node-role.kubernetes.io/edge\\,Modules.Edged.TailoredKubeletConfig.RegisterWithTaints\\[0\\].Effect=NoSchedule"
  # edgeStream given to keadm join, so edgecore starts with it (issue 13 item 8)
  called "--set Modules.EdgeStream.Enable=true\\,Modules.EdgeStream.TunnelServer=192.168.10.10:10004"
  # edgecore.yaml edited, backed up, restarted
  cfg=$KP_SYSROOT/etc/kubeedge/config/edgecore.yaml
  ls "$cfg".bak.* >/dev/null
  grep -A1 '^  edgeStream:' "$cfg" | grep -q 'enable: true'
  # edgecore stopped before the edit (it would rewrite the file from memory), started after it
  called "systemctl stop edgecore"
  called "systemctl start edgecore"
  # the join token is cleared once edgecore has its certificates; the backup holding it is 0600
  grep -qx '    token: ""' "$cfg"
  [[ $(stat -c %a "$cfg".bak.*) == 600 ]]
  output_has "modules.edgeHub.token: <join token> -> \"\""
  output_has "4 change(s)"
  output_has "refresh-stream-cert.sh --add-edge-ip 192.168.10.21"
}

@test "edge install: a second run changes nothing and succeeds" {
  run edge_install
  status_is 0
  before=$(tree_of | grep -v kubeprepare-install.log)
  reset_calls
  run edge_install
  status_is 0
  output_has "keadm join is skipped"
  output_has "0 change(s)"
  not_called "keadm join"
  not_called "images import"
  not_called "systemctl restart"
  not_called "systemctl enable"
  not_called "tar -C"
  [[ $(tree_of | grep -v kubeprepare-install.log) == "$before" ]]
  [[ $(ls "$KP_SYSROOT"/etc/kubeedge/config/edgecore.yaml.bak.* | wc -l) -eq 1 ]]
}

@test "edge install: an existing containerd is used as it is, its cgroup driver passed to keadm" {
  existing_containerd false
  config_before=$(sha256sum <"$KP_SYSROOT/etc/containerd/config.toml")
  PATH="$KP_SYSROOT/usr/bin:$PATH" run edge_install
  status_is 0
  output_has "existing containerd"
  called "--cgroupdriver cgroupfs"
  not_called "systemctl enable --now containerd"
  not_called "containerd config default"
  [[ ! -e $KP_SYSROOT/usr/local/bin/containerd ]]
  [[ $(sha256sum <"$KP_SYSROOT/etc/containerd/config.toml") == "$config_before" ]]
  file_lacks "$KP_SYSROOT/etc/kubeprepare/edge.env" RUNTIME_INSTALLED_BY
}

@test "edge install: an existing containerd with SystemdCgroup = true gives --cgroupdriver systemd" {
  existing_containerd true
  run edge_install
  status_is 0
  called "--cgroupdriver systemd"
}

@test "edge install: an installed but stopped containerd is started, not replaced" {
  existing_containerd ""
  rm -f "$KP_SYSROOT/run/containerd/containerd.sock"
  run edge_install
  status_is 0
  called "systemctl start containerd"
  [[ ! -e $KP_SYSROOT/usr/local/bin/containerd ]]
  called "--cgroupdriver cgroupfs"
}

@test "edge install (arm bundle): no runtime and none bundled is a clear error" {
  kp_setup edge arm
  KP_FAKE_UNAME_M=armv7l run edge_install
  status_is 3
  output_has "carries none"
  output_has "apt-get install containerd"
  refute_mutations
}

@test "edge install (arm bundle): an existing containerd works" {
  kp_setup edge arm
  existing_containerd false
  KP_FAKE_UNAME_M=armv7l run edge_install
  status_is 0
  called "images import --platform $(kp_ctx platform)"
}

@test "edge install: an existing containerd's missing sandbox image is tagged from the bundled pause" {
  existing_containerd false
  pause=$(kp_ctx images.pause)
  KP_FAKE_SANDBOX=registry.k8s.io/pause:3.10 PATH="$KP_SYSROOT/usr/bin:$PATH" run edge_install
  status_is 0
  output_has "sandbox image registry.k8s.io/pause:3.10 is not present"
  called "images tag $pause registry.k8s.io/pause:3.10"
  # a second run finds it present and tags nothing more
  KP_FAKE_SANDBOX=registry.k8s.io/pause:3.10 PATH="$KP_SYSROOT/usr/bin:$PATH" run edge_install
  status_is 0
  output_has "sandbox image registry.k8s.io/pause:3.10 is present"
  [[ $(count_calls "images tag") -eq 1 ]]
}

@test "edge install: a containerd already using the bundled pause image needs no tag" {
  existing_containerd false
  KP_FAKE_SANDBOX=$(kp_ctx images.pause) PATH="$KP_SYSROOT/usr/bin:$PATH" run edge_install
  status_is 0
  called "containerd config dump"
  not_called "images tag"
}

@test "edge install: a short sandbox image name is normalised before it is looked up" {
  existing_containerd false
  KP_FAKE_SANDBOX=rancher/mirrored-pause:3.6 PATH="$KP_SYSROOT/usr/bin:$PATH" run edge_install
  status_is 0
  called "images tag $(kp_ctx images.pause) docker.io/rancher/mirrored-pause:3.6"
}
