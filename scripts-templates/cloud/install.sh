#!/usr/bin/env bash
# install.sh (cloud): offline install of K3s {{versions.k3s}} + KubeEdge CloudCore {{versions.kubeedge}}
# + EdgeMesh {{versions.edgemesh}} + metrics-server {{versions.metricsServer}} from bundle {{bundleName}}.
{{> shell-lib}}
{{> yaml-tool}}

readonly K3S_VERSION={{sq versions.k3s}}
readonly KUBEEDGE_VERSION={{sq versions.kubeedge}}
readonly KUBEEDGE_VERSION_BARE={{sq versions.kubeedgeBare}}
readonly KUBEEDGE_IMAGE_REPOSITORY={{sq kubeedgeImageRepository}}
readonly MOSQUITTO_ENABLED={{#if images.mosquitto}}true{{else}}false{{/if}}
readonly ALL_IMAGES=({{#each images.all}}{{sq this}} {{/each}})
readonly PLATFORM={{sq platform}}
readonly PORT_CLOUDHUB={{ports.cloudHubWebsocket}} PORT_CLOUDHUB_HTTPS={{ports.cloudHubHttps}}
readonly PORT_STREAM={{ports.cloudStream}} PORT_TUNNEL={{ports.tunnel}}
readonly METRICS_SERVER_PORT=4443
readonly EDGEMESH_VERSION={{sq versions.edgemesh}} METRICS_SERVER_VERSION={{sq versions.metricsServer}}
readonly IPTABLES_MANAGER_IMAGE={{sq images.iptablesManager}}

BUNDLE_DIR=$SCRIPT_DIR
readonly BUNDLE_DIR
readonly BUNDLE_K3S="$BUNDLE_DIR/{{files.k3s}}"
readonly BUNDLE_K3S_INSTALL="$BUNDLE_DIR/{{files.k3sInstallScript}}"
readonly BUNDLE_KEADM="$BUNDLE_DIR/{{files.keadm}}"
readonly BUNDLE_IMAGES="$BUNDLE_DIR/{{files.imagesArchive}}"

K3S_BIN=$(sys /usr/local/bin/k3s)
KEADM_BIN=$(sys /usr/local/bin/keadm)
K3S_IMAGES_DIR=$(sys /var/lib/rancher/k3s/agent/images)
# keadm and kubectl are given this path as is; with KP_SYSROOT it is the test copy.
KUBECONFIG_PATH=$(sys /etc/rancher/k3s/k3s.yaml)
CLOUD_STATE="$KP_STATE_DIR/cloud.env"
readonly K3S_BIN KEADM_BIN K3S_IMAGES_DIR KUBECONFIG_PATH CLOUD_STATE

# usage: prints the help text.
usage() {
  cat <<USAGE
Usage: $SCRIPT_NAME --advertise-address IP [--node-ip IP] [--node-name NAME] [--edge-ips IP,IP...]
                    [--stream-endpoint IP:PORT] [--timeout SECONDS] [--dry-run] [--log-file PATH] [--help]

Installs, without any network access, on this host:
  1. K3s $K3S_VERSION (server, --egress-selector-mode=disabled, its metrics-server addon disabled)
  2. KubeEdge CloudCore $KUBEEDGE_VERSION with keadm init (cloudStream + dynamicController enabled,
     iptables-manager in external mode, Deployment strategy Recreate so that CloudCore can restart on
     one node), images taken from the bundle
  3. stream certificates whose SANs hold every node IP (scripts/refresh-stream-cert.sh), then checks
     that CloudCore serves them on its stream port (openssl s_client)
  4. EdgeMesh $EDGEMESH_VERSION (relay node = this node, PSK kept in /etc/kubeprepare/edgemesh-psk)
  5. metrics-server $METRICS_SERVER_VERSION, with the tunnel-port DNAT to CloudStream checked (iptables-manager's
     TUNNEL-PORT) or installed where iptables-manager does not run (manifests/iptables-metrics-setup.sh)
and prints the token and the command line for the edge nodes.

  --advertise-address IP  address edge nodes use to reach this node (CloudHub, K3s API)   [required]
  --node-ip IP            this node's own IP if different (e.g. advertise address is a NAT/public IP);
                          default: the advertise address. Behind NAT (advertise address = the public
                          IP, --node-ip = the address on this host): the NAT must forward TCP 6443 and
                          $PORT_CLOUDHUB-$PORT_TUNNEL to the node IP; K3s gets --node-external-ip/--tls-san for the
                          advertise address and CloudCore advertises both; the stream certificate holds both
  --node-name NAME        Kubernetes node name (default: the host name, lower case)
  --edge-ips LIST         comma-separated edge node IPs to put in the stream certificate now; more
                          can be added later with scripts/refresh-stream-cert.sh --add-edge-ip
  --stream-endpoint IP:PORT
                          where this host reaches CloudCore's stream port for the certificate check
                          (default: the node IP, port $PORT_STREAM)
  --timeout SECONDS       upper bound of each wait (node Ready, CloudCore Ready...; default 600)
  --dry-run               check and print every command that would change the host; change nothing.
                          Opens no connection: what it would ask the K3s API or containerd is
                          printed as a "read ..." line, not asked
  --log-file PATH         log file (default /var/log/kubeprepare-install.log)
  --help                  show this help

Re-running is safe: steps already done are detected and skipped. An existing K3s or KubeEdge of
another version is never overwritten: the script stops before changing anything.
Exit status: 0 ok, 1 a step failed, 2 bad usage, 3 preflight failed, 4 bundle verification
failed, 5 a wait timed out.
USAGE
}

ADVERTISE=""
NODE_IP=""
NODE_NAME=""
EDGE_IPS=()
STREAM_ENDPOINT=""
TIMEOUT=600
LOG_PATH=$(sys /var/log/kubeprepare-install.log)

readonly KP_COMMON_OPTS="--timeout --dry-run --log-file"

# parse_args ARGS...: reads the options into ADVERTISE, NODE_IP, NODE_NAME, EDGE_IPS, STREAM_ENDPOINT; dies (exit 2) on bad usage.
parse_args() {
  local list ip ips=()
  normalize_args "$@"
  set -- "${NORM_ARGS[@]+"${NORM_ARGS[@]}"}"
  while (($#)); do
    case $1 in
      --advertise-address) need_value "$1" "$#" "${2-}"; ADVERTISE=$2; shift 2 ;;
      --node-ip) need_value "$1" "$#" "${2-}"; NODE_IP=$2; shift 2 ;;
      --node-name) need_value "$1" "$#" "${2-}"; NODE_NAME=$2; shift 2 ;;
      --edge-ips) need_value "$1" "$#" "${2-}"; list=$2; shift 2
        IFS=, read -ra ips <<<"$list"
        for ip in "${ips[@]}"; do
          is_host_ipv4 "$ip" || die_usage "--edge-ips: '$ip' is not a usable IPv4 address"
          EDGE_IPS+=("$ip")
        done ;;
      --stream-endpoint) need_value "$1" "$#" "${2-}"; STREAM_ENDPOINT=$2; shift 2
        if [[ $STREAM_ENDPOINT != *:* ]] || ! is_ipv4 "${STREAM_ENDPOINT%:*}" || ! is_port "${STREAM_ENDPOINT##*:}"; then
          die_usage "--stream-endpoint: '$STREAM_ENDPOINT' is not IPv4:PORT"
        fi ;;
      *) common_arg "$@"; shift "$KP_SHIFT" ;;
    esac
  done
  [[ -n $ADVERTISE ]] || die_usage "--advertise-address is required"
  is_host_ipv4 "$ADVERTISE" || die_usage "--advertise-address: '$ADVERTISE' is not a usable IPv4 address"
  NODE_IP=${NODE_IP:-$ADVERTISE}
  is_host_ipv4 "$NODE_IP" || die_usage "--node-ip: '$NODE_IP' is not a usable IPv4 address"
  if [[ -z $NODE_NAME ]]; then
    NODE_NAME=$(uname -n | tr '[:upper:]' '[:lower:]')
    is_node_name "$NODE_NAME" || die_usage "the host name '$NODE_NAME' is not a valid node name; give --node-name"
  fi
  is_node_name "$NODE_NAME" || die_usage "--node-name: '$NODE_NAME' is not a valid node name (lower-case RFC 1123)"
}


# ---- preflight ----
K3S_STATE=absent      # absent | same | other
KUBEEDGE_STATE=absent # absent | same | other | unknown (API not reachable yet)

# detect_k3s: sets K3S_STATE (absent or same); dies when another K3s version is installed.
detect_k3s() {
  local have
  [[ -x $K3S_BIN ]] || return 0
  have=$("$K3S_BIN" --version 2>/dev/null | awk 'NR == 1 { print $3 }') || true
  if [[ $have == "$K3S_VERSION" ]]; then
    K3S_STATE=same
    log "K3s $have is already installed: the binary is kept"
  else
    K3S_STATE=other
    die_preflight "K3s ${have:-of unknown version} is installed at $K3S_BIN but this bundle carries $K3S_VERSION." \
      "Refusing to replace it: upgrade or uninstall that K3s first (k3s-uninstall.sh), then re-run."
  fi
}

# detect_kubeedge: sets KUBEEDGE_STATE from the cloudcore Deployment (unknown without the API); dies on another version.
detect_kubeedge() {
  local image tag
  if [[ $K3S_STATE == absent ]]; then
    return 0
  fi
  if [[ $DRY_RUN == 1 ]]; then
    KUBEEDGE_STATE=unknown
    dry_read "deployment kubeedge/cloudcore: a real run skips keadm init when CloudCore $KUBEEDGE_VERSION is" \
      "deployed and refuses another version"
    return 0
  fi
  if ! api_up; then
    KUBEEDGE_STATE=unknown
    log "K3s API not reachable yet: KubeEdge is checked once K3s is up"
    return 0
  fi
  image=$(kc -n kubeedge get deployment cloudcore -o jsonpath='{.spec.template.spec.containers[0].image}' 2>/dev/null) || image=""
  [[ -n $image ]] || { KUBEEDGE_STATE=absent; return 0; }
  tag=${image##*:}
  if [[ $tag == "$KUBEEDGE_VERSION" ]]; then
    KUBEEDGE_STATE=same
    log "KubeEdge CloudCore $tag is already deployed: keadm init is skipped"
  else
    KUBEEDGE_STATE=other
    die_preflight "KubeEdge CloudCore $tag is deployed but this bundle carries $KUBEEDGE_VERSION. Refusing to" \
      "mix versions: upgrade it with keadm upgrade cloud, or remove it (keadm reset cloud), then re-run."
  fi
}

# check_ports: dies unless the ports of K3s, CloudCore and metrics-server are free or held by our own.
check_ports() {
  local port owners bad=()
  local -A allowed=([6443]=k3s [$PORT_CLOUDHUB]=cloudcore [$PORT_CLOUDHUB_HTTPS]=cloudcore
    [$PORT_STREAM]=cloudcore [$PORT_TUNNEL]=cloudcore [$METRICS_SERVER_PORT]=metrics-server)
  for port in 6443 "$PORT_CLOUDHUB" "$PORT_CLOUDHUB_HTTPS" "$PORT_STREAM" "$PORT_TUNNEL" "$METRICS_SERVER_PORT"; do
    owners=$(listeners "$port" | tr '\n' ' ')
    [[ -n $owners ]] || continue
    # ours when our K3s is installed and the listener's process name starts with the expected
    # name (k3s-server, cloudcore...); without our K3s every listener is someone else's
    if [[ $K3S_STATE == same && $owners == *'(("'"${allowed[$port]}"* ]]; then
      log "port $port is in use by our own ${allowed[$port]}: fine for a re-run"
      continue
    fi
    bad+=("$port ($owners)")
  done
  ((${#bad[@]} == 0)) || die_preflight "port(s) needed by K3s/CloudCore/metrics-server are taken by other programs: ${bad[*]}"
}

# check_iptables_framework: dies on an nf_tables iptables (warns when CloudCore is already deployed).
# The chart's iptables-manager (external mode) defaults to iptablesManager.framework=legacy: its image
# switches iptables to iptables-legacy (build/iptablesmanager/Dockerfile). On a host whose iptables is
# the nf_tables backend, its TUNNEL-PORT rules would land in the legacy tables beside K3s' nft rules.
check_iptables_framework() {
  local v
  v=$(iptables -V 2>/dev/null) || v=""
  case $v in
    *nf_tables*) ;;
    *) log "iptables: ${v:-unknown version} (legacy framework, as the bundled iptables-manager image uses)"; return 0 ;;
  esac
  if [[ $KUBEEDGE_STATE == same ]]; then
    warn "iptables on this host is the nf_tables backend ($v) but the deployed iptables-manager uses the" \
      "legacy framework; its TUNNEL-PORT rules are in the legacy tables (iptables-legacy -t nat -S TUNNEL-PORT)"
    return 0
  fi
  die_preflight "iptables on this host is the nf_tables backend ($v). KubeEdge's iptables-manager in this" \
    "bundle is the legacy-framework image ($IPTABLES_MANAGER_IMAGE, chart default iptablesManager.framework=legacy);" \
    "the nft variant (kubeedge/iptables-manager-nft) is not in this bundle. Fix: switch this host to the legacy" \
    "backend before installing (Debian/Ubuntu: update-alternatives --set iptables /usr/sbin/iptables-legacy;" \
    "update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy), then re-run"
}

# preflight: root, arch, commands, bundle files and checksums, existing K3s/KubeEdge, iptables, ports, disk.
preflight() {
  log "== preflight =="
  need_root
  check_arch
  need_cmd awk sed grep cmp install mktemp sha256sum openssl iptables ss systemctl uname
  local f
  for f in "$BUNDLE_K3S" "$BUNDLE_K3S_INSTALL" "$BUNDLE_KEADM" "$BUNDLE_IMAGES"; do
    [[ -f $f ]] || die_preflight "bundle file missing: $f"
  done
  "$BUNDLE_DIR/verify.sh" --quiet || die_verify "the bundle in $BUNDLE_DIR is damaged (see above); copy it again"
  log "bundle $BUNDLE_NAME verified"
  detect_k3s
  detect_kubeedge
  check_iptables_framework
  check_ports
  local steps=()
  read -ra steps <<<"$(disk_steps)"
  check_disk "$BUNDLE_DIR/disk.tsv" "${steps[@]+"${steps[@]}"}"
  log "advertise address $ADVERTISE, node IP $NODE_IP, node name $NODE_NAME"
}

# disk_steps: prints the install steps still to run, whose disk needs check_disk adds up (disk.tsv).
disk_steps() {
  [[ $K3S_STATE == same ]] || printf 'k3s '
  cmp -s -- "$BUNDLE_IMAGES" "$K3S_IMAGES_DIR/kubeprepare-cloud-images.tar" 2>/dev/null || printf 'images '
  cmp -s -- "$BUNDLE_KEADM" "$KEADM_BIN" 2>/dev/null || printf 'keadm'
}

# ---- K3s ----
# k3s_exec: prints the K3s server command line (INSTALL_K3S_EXEC) for these addresses.
k3s_exec() {
  local args=(server --egress-selector-mode=disabled --disable=metrics-server
    "--advertise-address=$ADVERTISE" "--node-ip=$NODE_IP" "--node-name=$NODE_NAME")
  if [[ $NODE_IP != "$ADVERTISE" ]]; then
    args+=("--node-external-ip=$ADVERTISE" "--tls-san=$ADVERTISE")
  fi
  printf '%s' "${args[*]}"
}

# install_k3s: installs K3s and its images (airgap install script) unless it already runs with this command line; waits for the node.
install_k3s() {
  log "== K3s $K3S_VERSION =="
  local exec_line stamp
  exec_line=$(k3s_exec)
  [[ $K3S_STATE == same ]] || install_file "$BUNDLE_K3S" "$K3S_BIN" 0755
  install_file "$BUNDLE_IMAGES" "$K3S_IMAGES_DIR/kubeprepare-cloud-images.tar" 0644
  stamp=$(state_get "$CLOUD_STATE" K3S_EXEC)
  if [[ $K3S_STATE == same && $stamp == "$exec_line" ]] && systemctl is-active --quiet k3s; then
    log "K3s already runs with: $exec_line"
  else
    log "running the K3s install script (airgap: INSTALL_K3S_SKIP_DOWNLOAD=true) with: $exec_line"
    run env INSTALL_K3S_SKIP_DOWNLOAD=true INSTALL_K3S_SKIP_SELINUX_RPM=true INSTALL_K3S_SELINUX_WARN=true \
      "INSTALL_K3S_BIN_DIR=$(dirname -- "$K3S_BIN")" "INSTALL_K3S_SYSTEMD_DIR=$(sys /etc/systemd/system)" \
      "INSTALL_K3S_EXEC=$exec_line" sh "$BUNDLE_K3S_INSTALL"
    [[ $DRY_RUN == 1 ]] || state_put "$CLOUD_STATE" K3S_EXEC "$exec_line"
  fi
  wait_for "$TIMEOUT" "the K3s kubeconfig $KUBECONFIG_PATH" test -f "$KUBECONFIG_PATH"
  wait_for "$TIMEOUT" "the K3s API server" api_up
  wait_for "$TIMEOUT" "node $NODE_NAME to be Ready" node_ready
}
# node_ready: is node NODE_NAME Ready?
node_ready() {
  [[ $(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

# ensure_images: imports the bundled images K3s containerd does not have yet (agent/images brings them at start) and pins them all.
ensure_images() {
  local present ref missing=()
  if [[ $DRY_RUN == 1 ]]; then
    dry_read "the images in K3s containerd (k3s ctr -n k8s.io images ls)"
    _kp_emit DRY-RUN "import $BUNDLE_IMAGES unless all ${#ALL_IMAGES[@]} bundled images are there"
  else
    present=$("$K3S_BIN" ctr -n k8s.io images ls -q 2>/dev/null) || present=""
    for ref in "${ALL_IMAGES[@]}"; do
      grep -qxF -- "$ref" <<<"$present" || missing+=("$ref")
    done
    if ((${#missing[@]} == 0)); then
      log "all ${#ALL_IMAGES[@]} bundled images are in K3s containerd"
    else
      log "${#missing[@]} bundled image(s) not imported yet (${missing[0]}...): importing $BUNDLE_IMAGES"
      run "$K3S_BIN" ctr -n k8s.io images import --platform "$PLATFORM" "$BUNDLE_IMAGES"
    fi
  fi
  # K3s pins what it imports from agent/images (labelImages), not what ctr imports, and clears its own
  # pins at each start before re-pinning: label them here too, so the kubelet's image GC keeps them.
  pin_images "$K3S_BIN" ctr -n k8s.io -- "${ALL_IMAGES[@]}"
}

# ---- K3s ServiceLB: this node only ----
# ServiceLB (K3s) runs a svclb-* DaemonSet (klipper-lb, host ports of the Service, e.g. traefik's 80/443)
# on every node, unless some node carries the label svccontroller.k3s.cattle.io/enablelb: then only on
# the nodes where it is "true". Labelling this node keeps svclb off every edge node, also off edge nodes
# joined before the edge taint existed (docs/scheduling.md).
readonly SERVICELB_LABEL=svccontroller.k3s.cattle.io/enablelb
# pin_servicelb: labels this node SERVICELB_LABEL=true (read back) so that svclb pods run on it only.
pin_servicelb() {
  local have=""
  if [[ $DRY_RUN == 0 ]]; then
    have=$(kc get node "$NODE_NAME" -o "jsonpath={.metadata.labels.svccontroller\.k3s\.cattle\.io/enablelb}" 2>/dev/null) || have=""
  fi
  if [[ $have == true ]]; then
    log "node $NODE_NAME already carries $SERVICELB_LABEL=true (ServiceLB runs on this node only)"
    return 0
  fi
  log "labelling node $NODE_NAME $SERVICELB_LABEL=true so that ServiceLB's svclb pods run on this node only"
  run kc label node "$NODE_NAME" "$SERVICELB_LABEL=true" --overwrite
  [[ $DRY_RUN == 1 ]] && return 0
  have=$(kc get node "$NODE_NAME" -o "jsonpath={.metadata.labels.svccontroller\.k3s\.cattle\.io/enablelb}" 2>/dev/null) || have=""
  [[ $have == true ]] || die "node $NODE_NAME does not show $SERVICELB_LABEL=true after kubectl label (read back: '${have}')"
}

# ---- KubeEdge CloudCore ----
# advertise_list: prints the --advertise-address list of keadm init (ADVERTISE, and NODE_IP when it differs).
advertise_list() {
  if [[ $NODE_IP != "$ADVERTISE" ]]; then printf '%s,%s' "$ADVERTISE" "$NODE_IP"; else printf '%s' "$ADVERTISE"; fi
}

# install_kubeedge: keadm init of CloudCore (skipped when the same version is deployed), waits for its rollout, checks its config.
install_kubeedge() {
  log "== KubeEdge CloudCore $KUBEEDGE_VERSION =="
  install_file "$BUNDLE_KEADM" "$KEADM_BIN" 0755
  if [[ $KUBEEDGE_STATE == unknown && $DRY_RUN == 0 ]]; then
    KUBEEDGE_STATE=absent
    detect_kubeedge
  fi
  if [[ $KUBEEDGE_STATE == same ]]; then
    check_cloudcore_config
    log "the cloudcore Deployment strategy is checked (and made Recreate) at the stream certificate step"
    return 0
  fi
  clear_failed_init
  # A previous install leaves these behind, and keadm init then fails on them (field experience).
  if [[ $DRY_RUN == 0 ]] && kc get clusterrole iptables-manager >/dev/null 2>&1; then
    log "removing the iptables-manager RBAC left by an earlier KubeEdge install"
    run kc delete clusterrolebinding iptables-manager --ignore-not-found
    run kc delete clusterrole iptables-manager --ignore-not-found
  fi
  run "$KEADM_BIN" init \
    --kubeedge-version "$KUBEEDGE_VERSION_BARE" \
    --advertise-address "$(advertise_list)" \
    --kube-config "$KUBECONFIG_PATH" \
    --image-repository "$KUBEEDGE_IMAGE_REPOSITORY" \
    --set iptablesManager.mode=external \
    --set cloudCore.strategy.type=Recreate \
    --set cloudCore.modules.cloudStream.enable=true \
    --set cloudCore.modules.dynamicController.enable=true \
    --set "mosquitto.tolerations[0].key=node-role.kubernetes.io/edge" \
    --set "mosquitto.tolerations[0].operator=Exists" \
    --set "mosquitto.tolerations[0].effect=NoSchedule" \
    --set "mosquitto.enable=$MOSQUITTO_ENABLED"
  wait_for "$TIMEOUT" "the cloudcore Deployment" kc -n kubeedge get deployment cloudcore
  if ! run kc -n kubeedge rollout status deployment/cloudcore "--timeout=${TIMEOUT}s"; then
    die_timeout "the cloudcore Deployment did not become available within ${TIMEOUT}s (kubectl rollout status above;" \
      "kubectl -n kubeedge get pods -l kubeedge=cloudcore shows why)"
  fi
  check_cloudcore_config
}

# clear_failed_init: removes the Helm release a failed keadm init left (keadm reset cloud) and waits for namespace kubeedge to go.
# keadm init is helm install with Wait (60 s) and no Atomic: when it fails, the Helm release cloudcore
# stays (status failed) with what it had created, and every later keadm init refuses ("the cloudcore
# release already exists"). Once CloudCore's Deployment exists a rerun skips keadm init (detect_kubeedge);
# without it nothing is there to keep: keadm reset cloud deletes namespace kubeedge, release records
# included, and keadm init starts again once the namespace is gone.
clear_failed_init() {
  local status
  status=$(kc -n kubeedge get secret -l owner=helm,name=cloudcore -o 'jsonpath={.items[*].metadata.labels.status}' 2>/dev/null) || status=""
  [[ -n $status ]] || return 0
  log "an earlier keadm init left the Helm release cloudcore (status: $status) without a cloudcore Deployment:" \
    "removing it with keadm reset cloud before keadm init"
  run "$KEADM_BIN" reset cloud --kube-config "$KUBECONFIG_PATH" --force
  wait_for "$TIMEOUT" "namespace kubeedge to be deleted (keadm reset cloud)" namespace_gone kubeedge
}
# namespace_gone NAME: is namespace NAME gone?
namespace_gone() { ! kc get namespace "$1" >/dev/null 2>&1; }

# check_cloudcore_config: dies unless cloudStream and dynamicController are on (logs/exec, metaServer, EdgeMesh) with our ports.
check_cloudcore_config() {
  local cfg tmp v bad=()
  if [[ $DRY_RUN == 1 ]]; then
    _kp_emit DRY-RUN "check cloudStream/dynamicController in ConfigMap kubeedge/cloudcore"
    return 0
  fi
  cfg=$(kc -n kubeedge get configmap cloudcore -o jsonpath='{.data.cloudcore\.yaml}')
  tmp=$(mktemp "${TMPDIR:-/tmp}/kp.XXXXXX")
  printf '%s\n' "$cfg" >"$tmp"
  v=$(yaml_get "$tmp" modules.cloudStream.enable) || v=""
  [[ $v == true ]] || bad+=("modules.cloudStream.enable=$v")
  v=$(yaml_get "$tmp" modules.dynamicController.enable) || v=""
  [[ $v == true ]] || bad+=("modules.dynamicController.enable=$v")
  v=$(yaml_get "$tmp" modules.cloudStream.streamPort) || v=""
  [[ -z $v || $v == "$PORT_STREAM" ]] || bad+=("modules.cloudStream.streamPort=$v")
  v=$(yaml_get "$tmp" modules.cloudStream.tunnelPort) || v=""
  [[ -z $v || $v == "$PORT_TUNNEL" ]] || bad+=("modules.cloudStream.tunnelPort=$v")
  rm -f -- "$tmp"
  if ((${#bad[@]})); then
    die "CloudCore is not configured for logs/exec/metrics: ${bad[*]}. Fix it with:" \
      "$KEADM_BIN upgrade cloud --kubeedge-version $KUBEEDGE_VERSION_BARE --kube-config $KUBECONFIG_PATH --reuse-values" \
      "--set cloudCore.modules.cloudStream.enable=true --set cloudCore.modules.dynamicController.enable=true"
  fi
  log "CloudCore config: cloudStream and dynamicController enabled (stream $PORT_STREAM, tunnel $PORT_TUNNEL)"
}

# check_tunnelport: logs the tunnel-port record of ConfigMap kubeedge/tunnelport; warns when it is not there yet.
# CloudCore creates ConfigMap kubeedge/tunnelport and records the negotiated tunnel port of each
# CloudCore IP in its annotation; iptables-manager builds the TUNNEL-PORT DNAT rules from it.
check_tunnelport() {
  local record
  if [[ $DRY_RUN == 1 ]]; then
    _kp_emit DRY-RUN "check ConfigMap kubeedge/tunnelport"
    return 0
  fi
  if ! kc -n kubeedge get configmap tunnelport >/dev/null 2>&1; then
    warn "ConfigMap kubeedge/tunnelport does not exist yet; CloudCore creates it at start." \
      "Check it later with scripts/check-logs-metrics.sh"
    return 0
  fi
  record=$(kc -n kubeedge get configmap tunnelport -o jsonpath='{.metadata.annotations.tunnelportrecord\.kubeedge\.io}' 2>/dev/null) || record=""
  # CloudCore writes its record when it starts (NegotiateTunnelPort), before any edge node connects
  [[ -n $record ]] || warn "ConfigMap kubeedge/tunnelport has no tunnel-port record yet (CloudCore writes it at start);" \
    "check CloudCore's log, then run scripts/check-logs-metrics.sh"
  log "tunnelport record: ${record:-<none>}"
}

# ---- stream certificates, EdgeMesh, metrics-server: helper scripts of the bundle ----
# sub_script PATH ARGS...: runs a bundle script with our --dry-run / --log-file.
sub_script() { # path args...: runs a bundle script with our --dry-run / --log-file
  local script=$1
  shift
  local extra=()
  [[ $DRY_RUN == 1 ]] && extra+=(--dry-run)
  [[ -n $LOG_FILE ]] && extra+=(--log-file "$LOG_FILE")
  "$BUNDLE_DIR/$script" "$@" "${extra[@]+"${extra[@]}"}"
}

# stream_certs: makes and applies the stream certificate for the cloud addresses and EDGE_IPS (scripts/refresh-stream-cert.sh).
stream_certs() {
  log "== stream certificates =="
  local args=(--add-ip "$ADVERTISE") ip
  [[ $NODE_IP != "$ADVERTISE" ]] && args+=(--add-ip "$NODE_IP")
  for ip in "${EDGE_IPS[@]+"${EDGE_IPS[@]}"}"; do args+=(--add-edge-ip "$ip"); done
  # default: NODE_IP:$PORT_STREAM (save_state recorded NODE_IP; CloudCore uses the host network)
  [[ -z $STREAM_ENDPOINT ]] || args+=(--stream-endpoint "$STREAM_ENDPOINT")
  sub_script scripts/refresh-stream-cert.sh "${args[@]}" --timeout "$TIMEOUT"
}

# deploy_edgemesh: deploys EdgeMesh with this node as relay (scripts/deploy-edgemesh.sh).
deploy_edgemesh() {
  log "== EdgeMesh $EDGEMESH_VERSION =="
  sub_script scripts/deploy-edgemesh.sh --relay-node "$NODE_NAME" --relay-address "$ADVERTISE" --timeout "$TIMEOUT"
}

# deploy_metrics_server: the tunnel-port DNAT, then metrics-server; waits for the metrics API.
deploy_metrics_server() {
  log "== metrics-server $METRICS_SERVER_VERSION =="
  sub_script manifests/iptables-metrics-setup.sh --cloudcore-ip "$NODE_IP" --stream-port "$PORT_STREAM" --timeout "$TIMEOUT"
  run kc apply -f "$BUNDLE_DIR/manifests/metrics-server.yaml"
  run kc -n kube-system rollout status deployment/metrics-server "--timeout=${TIMEOUT}s"
  if [[ $DRY_RUN == 0 ]]; then
    wait_for "$TIMEOUT" "the metrics API (APIService v1beta1.metrics.k8s.io Available)" metrics_api_available
  fi
}
# metrics_api_available: is APIService v1beta1.metrics.k8s.io Available?
metrics_api_available() {
  [[ $(kc get apiservice v1beta1.metrics.k8s.io -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null) == True ]]
}

# save_state: records the addresses, node name and bundle in cloud.env (other keys kept).
save_state() {
  [[ $DRY_RUN == 1 ]] && return 0
  {
    # keep the other keys; grep finds none when the file holds only these (exit 1 is fine then)
    if [[ -f $CLOUD_STATE ]]; then grep -Ev '^(ADVERTISE_ADDRESS|NODE_IP|NODE_NAME|BUNDLE)=' "$CLOUD_STATE" || true; fi
    printf 'ADVERTISE_ADDRESS=%s\nNODE_IP=%s\nNODE_NAME=%s\nBUNDLE=%s\n' "$ADVERTISE" "$NODE_IP" "$NODE_NAME" "$BUNDLE_NAME"
  } | sort | write_file "$CLOUD_STATE" 0600
}

# print_join: prints the edge token and the commands to run on each edge node.
print_join() {
  local token
  log "== edge nodes =="
  if [[ $DRY_RUN == 1 ]]; then
    _kp_emit DRY-RUN "$(quote_cmd "$KEADM_BIN" gettoken --kube-config "$KUBECONFIG_PATH")"
    token='<token>'
  else
    token=$("$KEADM_BIN" gettoken --kube-config "$KUBECONFIG_PATH") || die "keadm gettoken failed"
    token=$(printf '%s' "$token" | tr -d '[:space:]')
  fi
  printf '\n'
  if [[ $DRY_RUN == 1 ]]; then
    printf 'KubePrepare cloud install: dry run complete, nothing was changed (%s).\n' "$BUNDLE_NAME"
  else
    printf 'KubePrepare cloud install complete (%s).\n' "$BUNDLE_NAME"
  fi
  printf 'Edge token (valid for 24 h from its creation, so for 12 h at least from now: CloudCore makes a new one every 12 h):\n  %s\n' "$token"
  printf 'For joins after that, print the current token here with:\n  sudo %s gettoken --kube-config %s\n' "$KEADM_BIN" "$KUBECONFIG_PATH"
  printf 'On each edge node, from the unpacked edge bundle (same KubeEdge version %s), run:\n' "$KUBEEDGE_VERSION"
  printf '  sudo ./install.sh --cloud %s:%s --token %s --node-name <edge-node-name>\n' "$ADVERTISE" "$PORT_CLOUDHUB" "$token"
  printf 'Then add its IP to the stream certificate here (kubectl logs/exec):\n'
  printf '  sudo %s/scripts/refresh-stream-cert.sh --add-edge-ip <edge-node-ip>\n' "$BUNDLE_DIR"
  printf 'Check everything with: sudo %s/scripts/check-logs-metrics.sh\n\n' "$BUNDLE_DIR"
  log "install finished (the token is printed on the terminal only)"
}

# main ARGS...: runs the install steps in order.
main() {
  parse_args "$@"
  log_init "$LOG_PATH"
  [[ $DRY_RUN == 1 ]] && log "DRY RUN: nothing on this host will be changed"
  preflight
  install_k3s
  pin_servicelb
  ensure_images
  install_kubeedge
  check_tunnelport
  save_state
  stream_certs
  deploy_edgemesh
  deploy_metrics_server
  print_join
}

main "$@"
