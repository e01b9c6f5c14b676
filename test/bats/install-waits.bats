#!/usr/bin/env bats
# Every wait of cloud and edge install.sh times out when what it waits for never comes (exit 5, a message
# naming it), and a step that fails halfway is converged by a rerun once the cause is gone. The stubs
# emulate the component that does not come up (test/bats/stubs, KP_FAKE_* / kp_fake).
load helpers/common
load helpers/fake-cloudcore

TOKEN=$(printf 'a%.0s' {1..64}).eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJl

cloud_install() { "$BUNDLE/install.sh" --advertise-address 192.168.10.10 --node-name cloud-01 "$@"; }
edge_install() { "$BUNDLE/install.sh" --cloud 192.168.10.10:10000 --token "$TOKEN" --node-name edge-01 "$@"; }
# ends an emulated edgecore; stops the CloudCore stand-in of the cloud tests
teardown() {
  rm -f "${KP_STUB_STATE:-/nonexistent}/svc-edgecore-active"
  fake_cloudcore_stop
}
# cloud_setup: the cloud bundle, and a loopback stand-in for the CloudStream endpoint whose certificate
# install.sh checks (KP_STREAM_ENDPOINT): the install never dials the node IP.
cloud_setup() {
  kp_setup cloud
  fake_cloudcore_start
}

# cloud_times_out WHAT ENV=VALUE...: the install with ENV set stops with exit 5 naming WHAT within
# --timeout; then the same install without it (the cause gone) succeeds.
cloud_times_out() {
  local what=$1
  shift
  KP_POLL_INTERVAL=0.2 run env "$@" "$BUNDLE/install.sh" --advertise-address 192.168.10.10 --node-name cloud-01 --timeout 2
  status_is 5
  output_has "timed out: $what (after 2s)"
  run cloud_install
  status_is 0
  output_has "cloud install complete"
}

@test "cloud waits: the K3s kubeconfig never written -> exit 5; a rerun converges once K3s writes it" {
  cloud_setup
  KP_POLL_INTERVAL=0.2 KP_FAKE_K3S_KUBECONFIG=never run cloud_install --timeout 2
  status_is 5
  output_has "timed out: the K3s kubeconfig $KP_SYSROOT/etc/rancher/k3s/k3s.yaml (after 2s)"
  # K3s stays active and writes its kubeconfig when its server gets there: the rerun goes on from there.
  # (A K3s that stays active without ever writing it is not restarted by a rerun: it times out again.)
  printf 'apiVersion: v1\nkind: Config\n' >"$KP_SYSROOT/etc/rancher/k3s/k3s.yaml"
  run cloud_install
  status_is 0
  output_has "K3s already runs with"
  output_has "cloud install complete"
}

@test "cloud waits: the K3s API server never answers -> exit 5; a rerun converges" {
  cloud_setup
  cloud_times_out "the K3s API server" KP_FAKE_K3S_API=down
}

@test "cloud waits: the node never Ready -> exit 5; a rerun converges" {
  cloud_setup
  cloud_times_out "node cloud-01 to be Ready" KP_FAKE_NODE_READY=False
}

@test "cloud waits: the cloudcore Deployment never appears -> exit 5; a rerun converges" {
  cloud_setup
  cloud_times_out "the cloudcore Deployment" KP_FAKE_CLOUDCORE_DEPLOYMENT=absent
}

@test "cloud waits: the metrics API never Available -> exit 5; a rerun converges" {
  cloud_setup
  cloud_times_out "the metrics API (APIService v1beta1.metrics.k8s.io Available)" KP_FAKE_APISERVICE_AVAILABLE=False
}

@test "edge waits: the containerd socket never appears -> exit 5; a rerun converges" {
  kp_setup edge
  KP_POLL_INTERVAL=0.2 KP_FAKE_CONTAINERD_SOCKET=never run edge_install --timeout 2
  status_is 5
  output_has "timed out: the containerd socket $KP_SYSROOT/run/containerd/containerd.sock (after 2s)"
  not_called "keadm join"
  run edge_install
  status_is 0
  called "keadm join"
}

@test "edge waits: edgecore never active after the edit -> exit 5; a rerun converges" {
  kp_setup edge
  KP_POLL_INTERVAL=0.2 KP_FAKE_SVC_FAILS=edgecore run edge_install --timeout 2
  status_is 5
  output_has "timed out: edgecore to be active (after 2s)"
  # the edit itself is done and kept; the rerun finds it and only starts edgecore
  grep -A1 '^  edgeStream:' "$KP_SYSROOT/etc/kubeedge/config/edgecore.yaml" | grep -q 'enable: true'
  reset_calls
  run edge_install
  status_is 0
  output_has "keadm join is skipped"
  called "systemctl start edgecore"
  [[ -f $KP_STUB_STATE/svc-edgecore-active ]]
}

@test "edge: keadm join fails halfway (the certificates never come) -> exit 1 naming it; a rerun converges" {
  kp_setup edge
  KP_FAKE_CLOUD_NO_CERTS=1 KP_FAKE_JOIN_CERT_WAIT=1 run edge_install
  status_is 1
  output_has "timed out waiting for the condition"
  output_has "keadm join"
  [[ ! -e $KP_SYSROOT/etc/kubeedge/certs/server.crt ]]
  # the cloud answers now: the rerun finds the join's config, configures edgecore and restarts it, which
  # fetches its certificates; the token stays until they exist
  run edge_install
  status_is 0
  for _ in $(seq 1 50); do [[ -s $KP_SYSROOT/etc/kubeedge/certs/server.key ]] && break; sleep 0.1; done
  for f in ca/rootCA.crt certs/server.crt certs/server.key; do [[ -s $KP_SYSROOT/etc/kubeedge/$f ]]; done
  grep -A1 '^  edgeStream:' "$KP_SYSROOT/etc/kubeedge/config/edgecore.yaml" | grep -q 'enable: true'
  # a third run clears the token (certificates present) and then changes nothing more
  run edge_install
  status_is 0
  grep -qx '    token: ""' "$KP_SYSROOT/etc/kubeedge/config/edgecore.yaml"
}

@test "edge: edgecore clearing its token itself before our edit is fine: settings and cleared token both hold" {
  kp_setup edge
  KP_FAKE_TOKEN_CLEANUP_DELAY=0 run edge_install
  status_is 0
  cfg=$KP_SYSROOT/etc/kubeedge/config/edgecore.yaml
  grep -qx '    token: ""' "$cfg"
  grep -A1 '^  edgeStream:' "$cfg" | grep -q 'enable: true'
  grep -q '169.254.96.16' "$cfg"
}

@test "edge: an edgecore that would write its config back mid-edit is stopped first: the edits survive" {
  kp_setup edge
  KP_FAKE_TOKEN_CLEANUP_DELAY=1.5 run edge_install
  status_is 0
  sleep 2
  [[ ! -f $KP_STUB_STATE/edgecore-token-cleaned ]]
  cfg=$KP_SYSROOT/etc/kubeedge/config/edgecore.yaml
  grep -A1 '^  edgeStream:' "$cfg" | grep -q 'enable: true'
  grep -q '169.254.96.16' "$cfg"
}

# import_breaks_off INSTALL STORE RERUN_SAYS NEXT_STEP: the image import of INSTALL breaks off after its
# first image (KP_FAKE_CTR_IMPORT_FAILS): the install stops naming it before NEXT_STEP; the rerun imports
# once more, saying RERUN_SAYS, and every bundled image is then in STORE (the stub's image list).
import_breaks_off() {
  local install=$1 store=$KP_STUB_STATE/$2 says=$3 next=$4 ref
  KP_FAKE_CTR_IMPORT_FAILS=1 run "$install"
  status_is 1
  output_has "ctr: failed to ingest"
  not_called "$next"
  [[ $(wc -l <"$store") -eq 1 ]]
  reset_calls
  run "$install"
  status_is 0
  output_has "$says"
  [[ $(count_calls "images import") -eq 1 ]]
  for ref in $KP_FAKE_IMAGES; do grep -qxF "$ref" "$store"; done
  called "$next"
}

@test "edge: the image import breaks off halfway -> the install stops naming it; a rerun imports what is missing" {
  kp_setup edge
  import_breaks_off edge_install ctr-images "missing now:" "keadm join"
}

@test "cloud: applying metrics-server fails halfway (API server error) -> the install stops naming it; a rerun converges" {
  cloud_setup
  KP_FAKE_KUBECTL_FAILS=manifests/metrics-server.yaml run cloud_install
  status_is 1
  output_has "Error from server (InternalError)"
  output_has "metrics-server.yaml"
  not_called "get apiservice v1beta1.metrics.k8s.io"
  reset_calls
  run cloud_install
  status_is 0
  called "apply -f $BUNDLE/manifests/metrics-server.yaml"
  called "get apiservice v1beta1.metrics.k8s.io"
  # what the first run finished is not done again
  not_called "k3s-install.sh"
  not_called "keadm init"
  output_has "cloud install complete"
}

# ---- a step that fails halfway, then a rerun that converges ----
@test "cloud: keadm init's 60 s wait runs out (CloudCore created, not Ready yet) -> exit 1 naming it; the rerun skips keadm init and converges" {
  cloud_setup
  KP_FAKE_KEADM_INIT=timeout run cloud_install
  status_is 1
  output_has "failed to install release cloudcore, err: context deadline exceeded"
  output_has "keadm init"
  [[ $(cat "$KP_STUB_STATE/helm-release-cloudcore") == failed ]]
  reset_calls
  run cloud_install
  status_is 0
  # a second keadm init would refuse (CloudCore's process runs, the release exists): it is not run
  not_called "keadm init"
  output_has "keadm init is skipped"
  output_has "cloud install complete"
}

@test "cloud: keadm init fails before CloudCore exists (release left 'failed') -> the rerun resets it and installs" {
  cloud_setup
  KP_FAKE_KEADM_INIT=partial run cloud_install
  status_is 1
  output_has "failed to install release cloudcore"
  [[ ! -f $KP_STUB_STATE/kubeedge && -f $KP_STUB_STATE/helm-release-cloudcore ]]
  # what upstream keadm does with that release on its own: it refuses every later init
  run keadm init --kubeedge-version "$(kp_ctx versions.kubeedgeBare)" --kube-config /x
  status_is 1
  output_has "the cloudcore release already exists"
  reset_calls
  run cloud_install
  status_is 0
  output_has "an earlier keadm init left the Helm release cloudcore (status: failed)"
  called "keadm reset cloud --kube-config $KP_SYSROOT/etc/rancher/k3s/k3s.yaml --force"
  called "keadm init"
  [[ $(cat "$KP_STUB_STATE/helm-release-cloudcore") == deployed ]]
  output_has "cloud install complete"
}

@test "cloud: the stream-certificate step fails halfway (Secret stored, restart refused) -> the rerun restarts CloudCore and it serves the new certificate" {
  cloud_setup
  KP_FAKE_KUBECTL_FAILS="rollout restart deployment cloudcore" run cloud_install
  status_is 1
  output_has "Error from server (InternalError)"
  [[ -f $KP_STUB_STATE/secret-cloudcore/stream.crt ]]
  # CloudCore still serves the chart's certificate
  [[ $(fake_cloudcore_served | openssl x509 -noout -issuer) == *cloudcore-ca* ]]
  reset_calls
  run cloud_install
  status_is 0
  called "rollout restart deployment cloudcore"
  fake_cloudcore_serves_new 192.168.10.10
  output_has "cloud install complete"
}

@test "cloud: EdgeMesh fails halfway (its manifests refused by the API) -> the rerun applies them, keeps the PSK, and goes on" {
  cloud_setup
  KP_FAKE_KUBECTL_FAILS=manifests/edgemesh run cloud_install
  status_is 1
  output_has "Error from server (InternalError)"
  not_called "apply -f $BUNDLE/manifests/metrics-server.yaml"
  psk=$(cat "$KP_SYSROOT/etc/kubeprepare/edgemesh-psk")
  reset_calls
  run cloud_install
  status_is 0
  called "apply -f $BUNDLE/scripts/../manifests/edgemesh"
  called "apply -f $BUNDLE/manifests/metrics-server.yaml"
  [[ $(cat "$KP_SYSROOT/etc/kubeprepare/edgemesh-psk") == "$psk" ]]
  not_called "keadm init"
  output_has "cloud install complete"
}

@test "edge: the bundled containerd install stops halfway (disk full in the CNI tarball) -> the rerun installs the runtime again and converges" {
  kp_setup edge
  KP_FAKE_TAR_FAILS=cni-plugins run edge_install
  status_is 2
  output_has "Cannot write: No space left on device"
  not_called "keadm join"
  # containerd's files are there, its config and unit not yet: the half-installed runtime is known as ours
  [[ -x $KP_SYSROOT/usr/local/bin/containerd && ! -f $KP_SYSROOT/etc/containerd/config.toml ]]
  grep -qx 'RUNTIME_INSTALLED_BY=kubeprepare-incomplete' "$KP_SYSROOT/etc/kubeprepare/edge.env"
  grep -qx '/etc/systemd/system/containerd.service' "$KP_SYSROOT/etc/kubeprepare/edge-runtime-files"
  reset_calls
  run edge_install
  status_is 0
  output_has "an earlier run stopped while it installed the bundled containerd: installing it again"
  grep -Eqx '[[:space:]]+SystemdCgroup = true' "$KP_SYSROOT/etc/containerd/config.toml"
  grep -q 'ExecStart=/usr/local/bin/containerd' "$KP_SYSROOT/etc/systemd/system/containerd.service"
  [[ -x $KP_SYSROOT/opt/cni/bin/bridge ]]
  grep -qx 'RUNTIME_INSTALLED_BY=kubeprepare' "$KP_SYSROOT/etc/kubeprepare/edge.env"
  called "systemctl enable --now containerd"
  called "keadm join"
}

@test "cloud: the image import into K3s containerd breaks off halfway -> the install stops naming it; a rerun imports and goes on" {
  cloud_setup
  import_breaks_off cloud_install k3s-images "bundled image(s) not imported yet" "keadm init"
  output_has "cloud install complete"
}
