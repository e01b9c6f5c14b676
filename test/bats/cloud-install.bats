#!/usr/bin/env bats
# cloud/install.sh against PATH stubs (k3s, kubectl, keadm, systemctl, ss, iptables) and a fake root.
load helpers/common
load helpers/fake-cloudcore

# Every test gets a fake CloudCore stream endpoint (a real s_server on loopback serving the chart's
# certificate until the kubectl stub "replaces the pod" after the Secret changed).
setup() {
  kp_setup cloud
  fake_cloudcore_start
}
teardown() { fake_cloudcore_stop; }

install_ok() { "$BUNDLE/install.sh" --advertise-address 192.168.10.10 --node-name cloud-01 --stream-endpoint "$FAKE_CC_ENDPOINT" "$@"; }
served() { fake_cloudcore_served | openssl x509 -noout -issuer -ext subjectAltName; }

# ---- bad arguments: exit 2, nothing executed ----
@test "cloud install: --advertise-address is required" {
  run "$BUNDLE/install.sh"
  status_is 2
  output_has "--advertise-address is required"
  [[ ! -s $KP_STUB_LOG ]]
}

@test "cloud install: bad IPs are refused" {
  for ip in 10.0.0 300.1.1.1 a.b.c.d 127.0.0.1 0.0.0.0 224.0.0.1 010.1.1.1 ""; do
    run "$BUNDLE/install.sh" --advertise-address "$ip"
    status_is 2
  done
  run "$BUNDLE/install.sh" --advertise-address 10.0.0.1 --node-ip 10.0.0.256
  status_is 2
  output_has "--node-ip: '10.0.0.256' is not a usable IPv4 address"
  run "$BUNDLE/install.sh" --advertise-address 10.0.0.1 --edge-ips 10.0.0.2,bogus
  status_is 2
  output_has "--edge-ips: 'bogus'"
  [[ ! -s $KP_STUB_LOG ]]
}

@test "cloud install: unknown flag, missing value, bad node name, bad timeout" {
  run "$BUNDLE/install.sh" --advertise-address 10.0.0.1 --frobnicate
  status_is 2
  output_has "unknown argument: --frobnicate"
  run "$BUNDLE/install.sh" --advertise-address
  status_is 2
  output_has "--advertise-address needs a value"
  run "$BUNDLE/install.sh" --advertise-address 10.0.0.1 --node-name Bad_Name
  status_is 2
  output_has "not a valid node name"
  run "$BUNDLE/install.sh" --advertise-address 10.0.0.1 --timeout 0
  status_is 2
  output_has "--timeout: '0' is not a number of seconds"
  run "$BUNDLE/install.sh" --advertise-address 10.0.0.1 --log-file
  status_is 2
  output_has "--log-file needs a value"
  # a shared option a script does not take is unknown there (uninstall has no --timeout)
  run "$BUNDLE/uninstall.sh" --timeout 5
  status_is 2
  output_has "unknown argument: --timeout"
  [[ ! -s $KP_STUB_LOG ]]
}

@test "cloud install: --flag=value form is accepted" {
  run "$BUNDLE/install.sh" --advertise-address=192.168.10.10 --node-name=cloud-01 --dry-run
  status_is 0
}

# ---- dry run ----
@test "cloud install: --dry-run prints the plan and changes nothing" {
  run install_ok --edge-ips 192.168.10.21 --dry-run
  status_is 0
  output_has "[DRY-RUN]"
  output_has "keadm init --kubeedge-version $(kp_ctx versions.kubeedgeBare)"
  output_has "--set cloudCore.strategy.type=Recreate"
  output_has "unless it is Recreate: kubectl -n kubeedge patch deployment cloudcore"
  output_has "wait up to 600s for CloudCore to serve the stream certificate"
  output_has "INSTALL_K3S_EXEC=server\\ --egress-selector-mode=disabled"
  output_has "[DRY-RUN] read ConfigMap kubeedge/tunnelport"
  refute_mutations
  [[ -z $(find "$KP_SYSROOT" -mindepth 1 -print -quit) ]] || { find "$KP_SYSROOT" >&2; false; }
}

# ---- a full install and a second run ----
@test "cloud install: installs K3s, CloudCore, certificates, EdgeMesh, metrics-server; prints the join command" {
  run install_ok --edge-ips 192.168.10.21,192.168.10.22
  status_is 0
  # K3s airgap
  [[ -x $KP_SYSROOT/usr/local/bin/k3s ]]
  [[ -f $KP_SYSROOT/var/lib/rancher/k3s/agent/images/kubeprepare-cloud-images.tar ]]
  cmp "$BUNDLE/images/images.tar" "$KP_SYSROOT/var/lib/rancher/k3s/agent/images/kubeprepare-cloud-images.tar"
  called "k3s-install.sh INSTALL_K3S_EXEC=server\\ --egress-selector-mode=disabled\\ --disable=metrics-server\\ --advertise-address=192.168.10.10\\ --node-ip=192.168.10.10\\ --node-name=cloud-01 INSTALL_K3S_SKIP_DOWNLOAD=true"
  called "get node cloud-01 -o jsonpath="
  called "k3s ctr -n k8s.io images import --platform linux/"
  # ServiceLB on this node only (docs/scheduling.md)
  called "label node cloud-01 svccontroller.k3s.cattle.io/enablelb=true --overwrite"
  # KubeEdge
  [[ -x $KP_SYSROOT/usr/local/bin/keadm ]]
  called "keadm init --kubeedge-version $(kp_ctx versions.kubeedgeBare) --advertise-address 192.168.10.10 --kube-config $KP_SYSROOT/etc/rancher/k3s/k3s.yaml --image-repository docker.io/kubeedge --set iptablesManager.mode=external --set cloudCore.strategy.type=Recreate --set cloudCore.modules.cloudStream.enable=true --set cloudCore.modules.dynamicController.enable=true"
  called "-n kubeedge rollout status deployment/cloudcore"
  # keadm init made the strategy Recreate: nothing to patch, and the restart finished
  [[ $(cat "$KP_STUB_STATE/cloudcore-strategy") == Recreate ]]
  not_called "patch deployment cloudcore"
  output_has "cloudcore Deployment strategy: Recreate"
  # stream certificate in the Secret, signed by the K3s server CA, SANs = cloud + edge IPs
  crt=$KP_STUB_STATE/secret-cloudcore/stream.crt
  [[ -f $crt && -f $KP_STUB_STATE/secret-cloudcore/stream.key && -f $KP_STUB_STATE/secret-cloudcore/streamCA.crt ]]
  openssl verify -CAfile "$KP_SYSROOT/var/lib/rancher/k3s/server/tls/server-ca.crt" "$crt"
  sans=$(openssl x509 -in "$crt" -noout -ext subjectAltName)
  for ip in 192.168.10.10 192.168.10.21 192.168.10.22; do [[ $sans == *"IP Address:$ip"* ]]; done
  cmp "$KP_STUB_STATE/secret-cloudcore/streamCA.crt" "$KP_SYSROOT/var/lib/rancher/k3s/server/tls/client-ca.crt"
  called "-n kubeedge rollout restart deployment cloudcore"
  # what CloudCore serves afterwards: the bundle's certificate (K3s server CA, every IP)
  s=$(served)
  [[ $s == *k3s-server-ca* ]]
  for ip in 192.168.10.10 192.168.10.21 192.168.10.22; do [[ $s == *"IP Address:$ip"* ]]; done
  output_has "serves a certificate for 192.168.10.10 192.168.10.21 192.168.10.22 issued by 'CN = k3s-server-ca'"
  # EdgeMesh
  called "apply -f $BUNDLE/scripts/../manifests/edgemesh"
  grep -q 'nodeName: cloud-01' "$KP_STUB_STATE/applied-ConfigMap-edgemesh-agent-cfg.yaml"
  grep -q -- '- 192.168.10.10' "$KP_STUB_STATE/applied-ConfigMap-edgemesh-agent-cfg.yaml"
  psk=$(cat "$KP_SYSROOT/etc/kubeprepare/edgemesh-psk")
  [[ $psk =~ ^[A-Za-z0-9+/]{43}=$ ]]
  grep -qF "$psk" "$KP_STUB_STATE/applied-ConfigMap-edgemesh-agent-psk.yaml"
  [[ $(stat -c %a "$KP_SYSROOT/etc/kubeprepare/edgemesh-psk") == 600 ]]
  called "label service kubernetes service.edgemesh.kubeedge.io/service-proxy-name= --overwrite"
  # metrics-server, and iptables-manager's DNAT of the tunnel port verified (the old tcp/10350 rule is gone)
  called "iptables -w -t nat -C TUNNEL-PORT -p tcp -m tcp --dport 10351 -j DNAT --to-destination 192.168.10.10:10003"
  not_called "iptables -w -t nat -A"
  called "apply -f $BUNDLE/manifests/metrics-server.yaml"
  # state, log, join command
  grep -qx 'NODE_IP=192.168.10.10' "$KP_SYSROOT/etc/kubeprepare/cloud.env"
  grep -q 'keadm init' "$KP_SYSROOT/var/log/kubeprepare-install.log"
  output_has "--cloud 192.168.10.10:10000 --token aaaaaaaa"
  output_has "refresh-stream-cert.sh --add-edge-ip"
  output_has "valid for 24 h from its creation"
  output_has "keadm gettoken --kube-config $KP_SYSROOT/etc/rancher/k3s/k3s.yaml"
}

@test "cloud install: a second run changes nothing and succeeds" {
  run install_ok --edge-ips 192.168.10.21
  status_is 0
  before=$(tree_of | grep -v 'kubeprepare-install.log')
  cert_before=$(sha256sum <"$KP_STUB_STATE/secret-cloudcore/stream.crt")
  psk_before=$(cat "$KP_SYSROOT/etc/kubeprepare/edgemesh-psk")
  reset_calls
  run install_ok
  status_is 0
  output_has "K3s $(kp_ctx versions.k3s) is already installed"
  output_has "keadm init is skipped"
  not_called "k3s-install.sh"
  not_called "keadm init"
  not_called "images import"
  not_called "iptables -w -t nat -A"
  not_called "create secret"
  not_called "rollout restart"
  [[ $(tree_of | grep -v 'kubeprepare-install.log') == "$before" ]]
  [[ $(sha256sum <"$KP_STUB_STATE/secret-cloudcore/stream.crt") == "$cert_before" ]]
  [[ $(cat "$KP_SYSROOT/etc/kubeprepare/edgemesh-psk") == "$psk_before" ]]
}

# kp_daemon_calls: the stub calls that would reach the K3s API or containerd (kubectl, k3s kubectl,
# ctr, k3s ctr), except client-only ones (kubectl ... --dry-run=client prints an object, asks nothing).
kp_daemon_calls() {
  awk '($1 == "kubectl" || $1 == "ctr" || ($1 == "k3s" && ($2 == "kubectl" || $2 == "ctr"))) && !/ --dry-run=client( |$)/' "$KP_STUB_LOG"
}

@test "cloud dry runs on an installed cloud node ask neither the K3s API nor containerd" {
  run install_ok --edge-ips 192.168.10.21
  status_is 0
  before=$(tree_of | grep -v 'kubeprepare-install.log')
  reset_calls
  run install_ok --edge-ips 192.168.10.22 --dry-run
  status_is 0
  output_has "[DRY-RUN] read deployment kubeedge/cloudcore: a real run skips keadm init when CloudCore"
  output_has "[DRY-RUN] read the images in K3s containerd"
  output_has "keadm init --kubeedge-version $(kp_ctx versions.kubeedgeBare)"
  output_has "wait up to 600s for CloudCore to serve the stream certificate"
  output_has "[DRY-RUN] iptables -w -t nat -A KUBEPREPARE-TUNNEL -p tcp -m tcp --dport $(kp_ctx ports.tunnelVirtual)"
  run "$BUNDLE/uninstall.sh" --dry-run
  status_is 0
  output_has "[DRY-RUN] read whether the K3s API answers"
  output_has "[DRY-RUN] kubectl delete namespace kubeedge --ignore-not-found"
  run "$BUNDLE/scripts/check-logs-metrics.sh" --dry-run
  status_is 0
  output_has "[DRY-RUN] check: stream certificate served on :$(kp_ctx ports.cloudStream)"
  output_has "dry run: the checks above were listed, not run"
  run "$BUNDLE/manifests/iptables-metrics-setup.sh" --dry-run --rules upstream
  status_is 0
  output_has "wait up to 120s for its DNAT of every recorded tunnel port"
  refute_mutations
  [[ -z $(kp_daemon_calls) ]] || { kp_daemon_calls >&2; false; }
  [[ $(tree_of | grep -v 'kubeprepare-install.log') == "$before" ]]
  # the guard: kc itself refuses in a dry run (no script can reach the API by mistake)
  run bash -c 'source <(sed -n "/^# ---- KubePrepare shell library/,/^# ---- end of the KubePrepare shell library/p" "$1"); DRY_RUN=1; KUBECONFIG_PATH=/x; kc get nodes' _ "$BUNDLE/install.sh"
  status_is 1
  output_has "[DRY-RUN] read kubectl get nodes (not asked: a dry run opens no connection)"
  [[ -z $(kp_daemon_calls) ]]
}

@test "cloud install: a different --node-ip adds --node-external-ip and a second advertise address" {
  # CloudCore records the IP of its host's default-route interface, the node IP here
  printf '{"ipTunnelPort":{"10.2.0.12":10351},"port":{"10351":true}}' >"$KP_STUB_STATE/tunnelport-record"
  run "$BUNDLE/install.sh" --advertise-address 203.0.113.7 --node-ip 10.2.0.12 --node-name cloud-01 --stream-endpoint "$FAKE_CC_ENDPOINT"
  status_is 0
  called "--advertise-address=203.0.113.7\\ --node-ip=10.2.0.12\\ --node-name=cloud-01\\ --node-external-ip=203.0.113.7\\ --tls-san=203.0.113.7"
  called "keadm init --kubeedge-version $(kp_ctx versions.kubeedgeBare) --advertise-address 203.0.113.7\\,10.2.0.12"
  # the DNAT goes to the recorded CloudCore IP
  called "-C TUNNEL-PORT -p tcp -m tcp --dport 10351 -j DNAT --to-destination 10.2.0.12:10003"
}

# ---- refusals: nothing changed ----
@test "cloud install: an installed K3s of another version is never replaced" {
  mkdir -p "$KP_SYSROOT/usr/local/bin"
  cp "$BUNDLE/bin/k3s" "$KP_SYSROOT/usr/local/bin/k3s"
  KP_FAKE_K3S_VERSION=v1.29.0+k3s1 run install_ok
  status_is 3
  output_has "K3s v1.29.0+k3s1 is installed"
  refute_mutations
  not_called "install -m"
}

@test "cloud install: a deployed KubeEdge of another version is refused" {
  run install_ok
  status_is 0
  printf 'docker.io/kubeedge/cloudcore:v1.20.0' >"$KP_STUB_STATE/kubeedge"
  reset_calls
  run install_ok
  status_is 3
  output_has "KubeEdge CloudCore v1.20.0 is deployed"
  refute_mutations
}

@test "cloud install: a port taken by another program stops the install" {
  KP_FAKE_LISTENERS="10000 nginx;6443 k3s-server" run install_ok
  status_is 3
  output_has "10000"
  output_has "nginx"
  refute_mutations
  # a K3s that is not ours (no /usr/local/bin/k3s from this bundle) holding 6443 is foreign too
  KP_FAKE_LISTENERS="6443 k3s-server" run install_ok
  status_is 3
  output_has "6443"
  refute_mutations
}

@test "cloud install: ports held by our own K3s/CloudCore are fine on a re-run" {
  run install_ok
  status_is 0
  KP_FAKE_LISTENERS="6443 k3s-server;10000 cloudcore;10002 cloudcore;10003 cloudcore;10004 cloudcore;4443 metrics-server" run install_ok
  status_is 0
  output_has "port 10003 is in use by our own cloudcore"
}

@test "cloud install: a damaged bundle is refused (verify.sh), exit 4" {
  printf 'x' >>"$BUNDLE/bin/keadm"
  run install_ok
  status_is 4
  output_has "modified: bin/keadm"
  refute_mutations
}

@test "cloud install: wrong architecture, exit 3" {
  KP_FAKE_UNAME_M=mips64 run install_ok
  status_is 3
  output_has "but this host is mips64"
  refute_mutations
}

@test "cloud install: CloudCore without dynamicController is reported with the fix" {
  cfg=$BATS_TEST_TMPDIR/cloudcore.yaml
  printf 'modules:\n  cloudStream:\n    enable: true\n  dynamicController:\n    enable: false\n' >"$cfg"
  KP_FAKE_CLOUDCORE_YAML=$cfg run install_ok
  status_is 1
  output_has "modules.dynamicController.enable=false"
  output_has "keadm upgrade cloud"
}

@test "cloud install: stale iptables-manager RBAC from an earlier install is removed before keadm init" {
  touch "$KP_STUB_STATE/stale-iptables-rbac"
  run install_ok
  status_is 0
  called "delete clusterrolebinding iptables-manager --ignore-not-found"
  called "delete clusterrole iptables-manager --ignore-not-found"
}

# ---- CloudCore restarts on this one node (issue 13.1) ----
@test "cloud install: a CloudCore installed by the old scripts (RollingUpdate, stale served cert) is patched and restarted" {
  # what the old install.sh left: keadm init without the strategy (chart {} -> RollingUpdate); its
  # restart stuck with the surge pod Pending, so CloudCore still serves the chart's certificate
  run install_ok --edge-ips 192.168.10.21
  status_is 0
  rm -f "$KP_STUB_STATE/cloudcore-strategy"
  fake_cloudcore_stop
  mv "$KP_STUB_STATE/secret-cloudcore" "$BATS_TEST_TMPDIR/secret"
  rm -f "$KP_STUB_STATE/fake-cloudcore.stop"
  fake_cloudcore_start   # serves the chart's certificate again
  mv "$BATS_TEST_TMPDIR/secret" "$KP_STUB_STATE/secret-cloudcore"   # ... while the Secret already matches
  [[ $(served) == *cloudcore-ca* ]]
  reset_calls
  run install_ok
  status_is 0
  output_has "keadm init is skipped"
  output_has "strategy is RollingUpdate"
  called "patch deployment cloudcore --type merge"
  [[ $(cat "$KP_STUB_STATE/cloudcore-strategy") == Recreate ]]
  output_has "already holds this certificate, but the running CloudCore does not serve it"
  not_called "create secret"
  called "rollout restart deployment cloudcore"
  [[ $(served) == *k3s-server-ca* && $(served) == *"IP Address:192.168.10.21"* ]]
}

@test "cloud install: keadm init's rollout that never completes exits 5" {
  # a cloudcore rollout that cannot finish (the stub keeps it pending until a pod is replaced)
  touch "$KP_STUB_STATE/cloudcore-rollout-pending"
  run install_ok --timeout 1
  status_is 5
  output_has "error: timed out waiting for the condition"
  output_has "the cloudcore Deployment did not become available within 1s"
}

# ---- nftables-only hosts (issue 13.7) ----
@test "cloud install: an nf_tables iptables host is refused before keadm init, with the fix" {
  KP_FAKE_IPTABLES_MODE=nf_tables run install_ok
  status_is 3
  output_has "iptables on this host is the nf_tables backend (iptables v1.8.9 (nf_tables))"
  output_has "update-alternatives --set iptables /usr/sbin/iptables-legacy"
  output_has "kubeedge/iptables-manager-nft"
  not_called "keadm init"
  not_called "k3s-install.sh"
}

@test "cloud install: --help documents NAT (--node-ip vs --advertise-address) and --stream-endpoint" {
  run "$BUNDLE/install.sh" --help
  status_is 0
  output_has "Behind NAT"
  output_has "--stream-endpoint IP:PORT"
  run "$BUNDLE/install.sh" --advertise-address 10.0.0.1 --stream-endpoint nope
  status_is 2
  output_has "--stream-endpoint: 'nope' is not IPv4:PORT"
}
