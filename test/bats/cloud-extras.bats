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
  output_has "PASS  tunnel-port record holds CloudCore's IP        CloudCore 192.168.10.10: tunnel port 10351"
  output_has "PASS  iptables-manager Running"
  output_has "PASS  DNAT tunnel port -> CloudCore:10003            TUNNEL-PORT: tcp/10351 -> 192.168.10.10:10003"
  output_has "PASS  no old tcp/10350 rewrite"
  output_has "PASS  stream certificate SANs"
  output_has "PASS  stream certificate served on :10003"
  output_has "PASS  edge kubeletEndpoint port = tunnel port        all 10351"
  output_has "PASS  kubectl top node (edge nodes)                  1 edge node(s) with metrics"
  output_has "PASS  kubectl logs on an edge pod"
  output_has "PASS  kubectl exec on an edge pod"
  output_has "PASS  kubectl top pod on an edge pod"
  output_has "18 passed, 0 failed, 0 skipped"
  refute_mutations
}

@test "check-logs-metrics: the real tunnel-port path: record without CloudCore's IP, missing DNAT, wrong kubelet port, old rule" {
  healthy_cluster
  # CloudCore's record is for another IP than its pod's: the DNAT check has no port to look for
  export KP_FAKE_CLOUDCORE_POD_IP=192.168.10.77
  run "$BUNDLE/scripts/check-logs-metrics.sh"
  status_is 1
  output_has "FAIL  tunnel-port record holds CloudCore's IP"
  output_has "has no entry for CloudCore's IP (192.168.10.77)"
  unset KP_FAKE_CLOUDCORE_POD_IP
  # iptables-manager gone and our chain not installed: no DNAT for 10351; an old tcp/10350 rule left;
  # an edge whose tunnel has not connected still reports its own port; an edge without metrics
  kc_state=$KP_STUB_STATE
  touch "$kc_state/no-iptables-manager"
  : >"$kc_state/iptables-nat"
  printf -- '-A OUTPUT -p tcp -m tcp --dport 10350 -m comment --comment kubeprepare-metrics-dnat -j DNAT --to-destination 192.168.10.10:10003\n' >>"$kc_state/iptables-nat"
  export KP_FAKE_EDGE_NODES="edge-01 edge-02" KP_FAKE_KUBELET_PORTS="edge-02=10350" KP_FAKE_NO_METRICS="edge-02"
  run "$BUNDLE/scripts/check-logs-metrics.sh"
  status_is 1
  output_has "PASS  tunnel-port record holds CloudCore's IP"
  output_has "SKIP  iptables-manager Running"
  output_has "FAIL  DNAT tunnel port -> CloudCore:10003"
  output_has "no DNAT tcp/10351 -> 192.168.10.10:10003 in nat TUNNEL-PORT or KUBEPREPARE-TUNNEL"
  output_has "FAIL  no old tcp/10350 rewrite"
  output_has "FAIL  edge kubeletEndpoint port = tunnel port        not 10351: edge-02:10350"
  output_has "FAIL  kubectl top node (edge nodes)                  no metrics for edge-02"
  # our own chain counts as the DNAT
  export KP_FAKE_CLOUDCORE_YAML=$BATS_TEST_TMPDIR/cc.yaml
  printf 'modules:\n  iptablesManager:\n    enable: false\n' >"$KP_FAKE_CLOUDCORE_YAML"
  "$BUNDLE/manifests/iptables-metrics-setup.sh" --no-persist
  reset_calls
  run "$BUNDLE/scripts/check-logs-metrics.sh"
  output_has "PASS  DNAT tunnel port -> CloudCore:10003            KUBEPREPARE-TUNNEL: tcp/10351 -> 192.168.10.10:10003"
  output_has "PASS  no old tcp/10350 rewrite"
  refute_mutations
}

@test "check-logs-metrics: problems give FAIL lines and a non-zero exit; no edge pod gives SKIP" {
  healthy_cluster
  export KP_FAKE_LISTENERS=""
  export KP_FAKE_NODE_IPS="192.168.10.10 192.168.10.21 192.168.10.99"
  unset KP_FAKE_EDGE_POD
  touch "$KP_STUB_STATE/no-iptables-manager"
  : >"$KP_STUB_STATE/iptables-nat"
  run "$BUNDLE/scripts/check-logs-metrics.sh"
  status_is 1
  output_has "FAIL  CloudCore listening on 10003/10004"
  output_has "FAIL  DNAT tunnel port -> CloudCore:10003"
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
  called "k3s-uninstall.sh"
  [[ ! -e $KP_SYSROOT/etc/kubeprepare && ! -e $KP_SYSROOT/usr/local/bin/keadm && ! -e $KP_SYSROOT/usr/local/bin/k3s ]]
  # iptables-manager's chain is not ours (keadm reset leaves it; it is gone at the next reboot)
  grep -q -- '^-A TUNNEL-PORT ' "$KP_STUB_STATE/iptables-nat"
  not_called "iptables -w -t nat -D TUNNEL-PORT"
  reset_calls
  run "$BUNDLE/uninstall.sh" --yes
  status_is 0
  not_called "keadm reset"
  not_called "k3s-uninstall.sh"
  not_called "iptables -w -t nat -D"
}

@test "cloud uninstall: removes exactly our tunnel-port rules and boot unit (site without iptables-manager, old rule left by an earlier version)" {
  touch "$KP_STUB_STATE/no-iptables-manager"
  export KP_FAKE_CLOUDCORE_YAML=$BATS_TEST_TMPDIR/cc.yaml
  printf 'modules:\n  cloudStream:\n    enable: true\n    streamPort: 10003\n    tunnelPort: 10004\n  dynamicController:\n    enable: true\n  iptablesManager:\n    enable: true\n    mode: external\n' >"$KP_FAKE_CLOUDCORE_YAML"
  run "$BUNDLE/install.sh" --advertise-address 192.168.10.10 --node-name cloud-01
  status_is 0
  unit=$KP_SYSROOT/etc/systemd/system/kubeprepare-tunnel-dnat.service
  [[ -f $unit && -x $KP_SYSROOT/usr/local/lib/kubeprepare/iptables-metrics-setup.sh ]]
  grep -qx 'After=network-online.target k3s.service' "$unit"
  grep -qxF -- '-A KUBEPREPARE-TUNNEL -p tcp -m tcp --dport 10351 -m comment --comment kubeprepare-tunnel-port -j DNAT --to-destination 192.168.10.10:10003' "$KP_STUB_STATE/iptables-nat"
  # rules that are not ours
  printf -- '-A OUTPUT -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.1:80\n' >>"$KP_STUB_STATE/iptables-nat"
  printf -- '-A OUTPUT -p tcp -m tcp --dport 10350 -m comment --comment kubeprepare-metrics-dnat -j DNAT --to-destination 192.168.10.10:10003\n' >>"$KP_STUB_STATE/iptables-nat"
  printf '[Unit]\n' >"$KP_SYSROOT/etc/systemd/system/other.service"
  reset_calls
  run "$BUNDLE/uninstall.sh" --yes --keep-k3s
  status_is 0
  called "systemctl disable kubeprepare-tunnel-dnat.service"
  [[ ! -e $unit && ! -e $KP_SYSROOT/usr/local/lib/kubeprepare/iptables-metrics-setup.sh ]]
  [[ -f $KP_SYSROOT/etc/systemd/system/other.service && -f $KP_SYSROOT/etc/systemd/system/k3s.service ]]
  [[ $(cat "$KP_STUB_STATE/iptables-nat") == "-A OUTPUT -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.1:80" ]]
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

# ---- reboots (issue 13 item 9): the ports each component binds on the cloud node ----
# What each component binds, by the upstream rules cited in docs/upstream.md (section "KubeEdge:
# CloudStream, tunnel ports, iptables-manager"), computed from the objects our scripts leave:
#   CloudCore: cloudHub 10000 and 10002, cloudStream streamPort/tunnelPort (its ConfigMap), all 0.0.0.0
#   metrics-server: its --secure-port (hostNetwork)
#   edgemesh-agent: edgeTunnel listenPort (20006 unless its config says otherwise), and every port of
#     every Service it proxies (no service-proxy-name label) whose IP may be local to the node
#     (kube-proxy ipvs binds ClusterIPs locally): the worst case, whatever the start order
cloud_node_ports() { # prints "port component" lines
  local cfg=$KP_STUB_STATE/applied-ConfigMap-edgemesh-agent-cfg.yaml p
  for p in 10000 10002 $(kubectl get configmap cloudcore -o jsonpath='{.data}' | awk '$1 == "streamPort:" || $1 == "tunnelPort:" { print $2 }'); do
    printf '%s cloudcore\n' "$p"
  done
  sed -n 's/^ *- --secure-port=//p' "$BUNDLE/manifests/metrics-server.yaml" | sed 's/$/ metrics-server/'
  p=$(node -e '
    const y = require(process.argv[2] + "/node_modules/yaml");
    const cm = y.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const c = y.parse(cm.data["edgemesh-agent.yaml"]);
    console.log(c.modules.edgeTunnel.listenPort ?? 20006);' "$cfg" "$KP_REPO")
  printf '%s edgemesh-agent\n' "$p"
  # Services of the cloud install: kubeedge/cloudcore (chart, ports 10000-10004), default/kubernetes (443)
  [[ -f $KP_STUB_STATE/svc-cloudcore-labelled ]] || printf '%s edgemesh-agent\n' 10000 10001 10002 10003 10004
  [[ -f $KP_STUB_STATE/svc-labelled ]] || printf '443 edgemesh-agent\n'
}
overlaps() { cloud_node_ports | sort -u | awk '{ n[$1]++; c[$1] = c[$1] " " $2 } END { for (p in n) if (n[p] > 1) print p ":" c[p] }' | sort; }

@test "reboot: CloudCore, edgemesh-agent and metrics-server bind disjoint ports on the cloud node, in any start order" {
  touch "$KP_STUB_STATE/kubeedge"
  run edgemesh
  status_is 0
  # the Service label is set before the agents are applied (they must never start without it)
  label_line=$(grep -n 'label service cloudcore service.edgemesh.kubeedge.io/service-proxy-name= --overwrite' "$KP_STUB_LOG" | cut -d: -f1)
  apply_line=$(grep -n "apply -f $BUNDLE/scripts/../manifests/edgemesh" "$KP_STUB_LOG" | cut -d: -f1)
  [[ -n $label_line && -n $apply_line && $label_line -lt $apply_line ]]
  [[ -f $KP_STUB_STATE/svc-cloudcore-labelled ]]
  run overlaps
  [[ -z $output ]] || { echo "overlapping ports: $output" >&2; false; }
  [[ $(cloud_node_ports | grep -c cloudcore) -eq 4 ]]
  # the control: without the label EdgeMesh would hold CloudCore's ports (the design notes' conflict)
  rm "$KP_STUB_STATE/svc-cloudcore-labelled"
  run overlaps
  [[ $output == *"10000: cloudcore edgemesh-agent"* && $output == *"10003: cloudcore edgemesh-agent"* && $output == *"10004: cloudcore edgemesh-agent"* ]]
}

@test "reboot: no Service kubeedge/cloudcore (cloudCore.service.enable=false): nothing to label, no failure" {
  run edgemesh
  status_is 0
  output_has "no Service kubeedge/cloudcore"
  not_called "label service cloudcore"
}
