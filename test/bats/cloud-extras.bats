#!/usr/bin/env bats
# deploy-edgemesh.sh, check-logs-metrics.sh and the cloud uninstall.sh, against the stubs.
load helpers/common
load helpers/fake-cloudcore

setup() {
  kp_setup cloud
  mkdir -p "$KP_SYSROOT/etc/rancher/k3s"
  touch "$KP_SYSROOT/etc/rancher/k3s/k3s.yaml"
  # install.sh checks the certificate CloudCore serves: a loopback stand-in (KP_STREAM_ENDPOINT)
  fake_cloudcore_start
}
teardown() { fake_cloudcore_stop; }

edgemesh() { "$BUNDLE/scripts/deploy-edgemesh.sh" --relay-node cloud-01 --relay-address 192.168.10.10 "$@"; }

# ---- EdgeMesh ----
@test "edgemesh: manifests, relay config, PSK made once and reused, service label" {
  run edgemesh
  status_is 0
  called "apply -f $BUNDLE/scripts/../manifests/edgemesh"
  cfg=$KP_STUB_STATE/applied-ConfigMap-edgemesh-agent-cfg.yaml
  node -e '
    const y = require(process.argv[2] + "/node_modules/yaml");
    const cm = y.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const c = y.parse(cm.data["edgemesh-agent.yaml"]);
    const ok = c.modules.edgeProxy.enable === true && c.modules.edgeTunnel.enable === true &&
      JSON.stringify(c.modules.edgeTunnel.relayNodes) === JSON.stringify([{ nodeName: "cloud-01", advertiseAddress: ["192.168.10.10"] }]);
    if (!ok) { console.error(JSON.stringify(c)); process.exit(1); }' "$cfg" "$KP_REPO"
  psk=$(cat "$KP_SYSROOT/etc/kubeprepare/edgemesh-psk")
  [[ $psk =~ ^[A-Za-z0-9+/]{43}=$ ]]
  [[ $(printf '%s' "$psk" | base64 -d | wc -c) -eq 32 ]]
  grep -qF "psk: |" "$KP_STUB_STATE/applied-ConfigMap-edgemesh-agent-psk.yaml"
  grep -qF "$psk" "$KP_STUB_STATE/applied-ConfigMap-edgemesh-agent-psk.yaml"
  called "-n default label service kubernetes service.edgemesh.kubeedge.io/service-proxy-name= --overwrite"
  hash1=$(grep -o 'config-hash\\":\\"[0-9a-f]*' "$KP_STUB_LOG")
  reset_calls
  run edgemesh
  status_is 0
  output_has "reusing the EdgeMesh PSK"
  [[ $(cat "$KP_SYSROOT/etc/kubeprepare/edgemesh-psk") == "$psk" ]]
  [[ $(grep -o 'config-hash\\":\\"[0-9a-f]*' "$KP_STUB_LOG") == "$hash1" ]]
  reset_calls
  run "$BUNDLE/scripts/deploy-edgemesh.sh" --relay-node cloud-01 --relay-address 192.168.10.10 --relay-address 203.0.113.7
  status_is 0
  [[ $(grep -o 'config-hash\\":\\"[0-9a-f]*' "$KP_STUB_LOG") != "$hash1" ]]
}

@test "edgemesh: bad arguments and --dry-run" {
  run "$BUNDLE/scripts/deploy-edgemesh.sh" --relay-address 192.168.10.10
  status_is 2
  output_has "--relay-node is required"
  run "$BUNDLE/scripts/deploy-edgemesh.sh" --relay-node cloud-01
  status_is 2
  output_has "--relay-address is required"
  run edgemesh --relay-address 999.1.1.1
  status_is 2
  run edgemesh --dry-run
  status_is 0
  refute_mutations
  [[ ! -e $KP_SYSROOT/etc/kubeprepare/edgemesh-psk ]]
}

# ---- checklist ----
healthy_cluster() {
  run "$BUNDLE/install.sh" --advertise-address 192.168.10.10 --node-name cloud-01 --edge-ips 192.168.10.21
  status_is 0
  export KP_FAKE_LISTENERS="10003 cloudcore;10004 cloudcore"
  export KP_FAKE_NODE_IPS="192.168.10.10 192.168.10.21"
  export KP_FAKE_EDGE_NODES="edge-01"
  export KP_FAKE_EDGE_POD="default/nginx-edge"
  reset_calls
}

@test "check-logs-metrics: every check passes on a healthy install" {
  healthy_cluster
  run "$BUNDLE/scripts/check-logs-metrics.sh"
  status_is 0
  output_has "PASS  K3s egress-selector-mode=disabled"
  output_has "PASS  cloudStream enabled"
  output_has "PASS  DNAT tcp/10350 -> CloudCore:10003"
  output_has "PASS  stream certificate SANs"
  output_has "PASS  stream certificate served on :10003"
  output_has "PASS  kubectl logs on an edge pod"
  output_has "PASS  kubectl exec on an edge pod"
  output_has "15 passed, 0 failed, 0 skipped"
  refute_mutations
}

@test "check-logs-metrics: problems give FAIL lines and a non-zero exit; no edge pod gives SKIP" {
  healthy_cluster
  export KP_FAKE_LISTENERS=""
  export KP_FAKE_NODE_IPS="192.168.10.10 192.168.10.21 192.168.10.99"
  unset KP_FAKE_EDGE_POD
  "$BUNDLE/manifests/iptables-metrics-setup.sh" --remove
  run "$BUNDLE/scripts/check-logs-metrics.sh"
  status_is 1
  output_has "FAIL  CloudCore listening on 10003/10004"
  output_has "FAIL  DNAT tcp/10350"
  output_has "node IP(s) not in the SANs: 192.168.10.99"
  output_has "lacks the SAN IP(s) 192.168.10.99"
  output_has "SKIP  kubectl logs on an edge pod"
  output_has "4 failed"
}

@test "check-logs-metrics: no K3s is a preflight error; bad usage" {
  rm "$KP_SYSROOT/etc/rancher/k3s/k3s.yaml"
  run "$BUNDLE/scripts/check-logs-metrics.sh"
  status_is 3
  run "$BUNDLE/scripts/check-logs-metrics.sh" --what
  status_is 2
}

# ---- uninstall ----
@test "cloud uninstall: needs --yes; --dry-run changes nothing" {
  run "$BUNDLE/uninstall.sh"
  status_is 2
  output_has "without --yes"
  run "$BUNDLE/install.sh" --advertise-address 192.168.10.10 --node-name cloud-01
  status_is 0
  before=$(tree_of | grep -v '\.log ')
  reset_calls
  run "$BUNDLE/uninstall.sh" --dry-run
  status_is 0
  refute_mutations
  [[ $(tree_of | grep -v '\.log ') == "$before" ]]
}

@test "cloud uninstall: reverses the install, and a second run is a no-op" {
  run "$BUNDLE/install.sh" --advertise-address 192.168.10.10 --node-name cloud-01
  status_is 0
  reset_calls
  run "$BUNDLE/uninstall.sh" --yes
  status_is 0
  called "delete -f $BUNDLE/manifests/metrics-server.yaml --ignore-not-found"
  called "delete -f $BUNDLE/manifests/edgemesh --ignore-not-found"
  called "label service kubernetes service.edgemesh.kubeedge.io/service-proxy-name-"
  called "keadm reset cloud --kube-config $KP_SYSROOT/etc/rancher/k3s/k3s.yaml --force"
  called "iptables -w -t nat -D OUTPUT -p tcp -m tcp --dport 10350"
  called "k3s-uninstall.sh"
  [[ ! -e $KP_SYSROOT/etc/kubeprepare && ! -e $KP_SYSROOT/usr/local/bin/keadm && ! -e $KP_SYSROOT/usr/local/bin/k3s ]]
  [[ ! -s $KP_STUB_STATE/iptables-nat ]]
  reset_calls
  run "$BUNDLE/uninstall.sh" --yes
  status_is 0
  not_called "keadm reset"
  not_called "k3s-uninstall.sh"
  not_called "iptables -w -t nat -D"
}

@test "cloud uninstall --keep-k3s: KubeEdge side only" {
  run "$BUNDLE/install.sh" --advertise-address 192.168.10.10 --node-name cloud-01
  status_is 0
  reset_calls
  run "$BUNDLE/uninstall.sh" --yes --keep-k3s
  status_is 0
  called "keadm reset cloud"
  called "delete namespace kubeedge --ignore-not-found"
  not_called "k3s-uninstall.sh"
  [[ -x $KP_SYSROOT/usr/local/bin/k3s ]]
  [[ ! -e $KP_SYSROOT/var/lib/rancher/k3s/agent/images/kubeprepare-cloud-images.tar ]]
}
