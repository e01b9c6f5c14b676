#!/usr/bin/env bash
# check-logs-metrics.sh: the cloud-side checklist for kubectl logs/exec/top on edge nodes
# (bundle {{bundleName}}).
{{> shell-lib}}
{{> yaml-tool}}
{{> stream-cert-check}}

readonly PORT_STREAM={{ports.cloudStream}} PORT_TUNNEL={{ports.tunnel}} PORT_OLD_METRICS={{ports.kubeletMetrics}}

# usage: prints the help text.
usage() {
  cat <<USAGE
Usage: $SCRIPT_NAME [--timeout SECONDS] [--dry-run] [--log-file PATH] [--help]

Runs each check of the design checklist and prints one PASS/FAIL/SKIP line per check:
  K3s runs with --egress-selector-mode=disabled
  CloudCore pod Running; cloudStream ($PORT_STREAM/$PORT_TUNNEL) and dynamicController enabled in
  ConfigMap kubeedge/cloudcore; CloudCore listening on $PORT_STREAM and $PORT_TUNNEL
  the tunnel-port record (ConfigMap kubeedge/tunnelport, written by CloudCore at its start) holds
  CloudCore's IP (its pod IP: hostNetwork) with its tunnel port (10351 for the first CloudCore)
  iptables-manager Running (SKIP when it is not deployed and KubePrepare's own chain is used)
  nat TUNNEL-PORT (iptables-manager) or KUBEPREPARE-TUNNEL (ours) DNATs that port to CloudCore:$PORT_STREAM
  no rule of earlier KubePrepare versions (nat OUTPUT tcp/$PORT_OLD_METRICS -> CloudStream) is left
  stream certificate (Secret kubeedge/cloudcore) covers every node IP
  the certificate CloudCore serves on :$PORT_STREAM holds every node IP and verifies against the K3s
  server CA (openssl s_client)
  edge nodes Ready; each edge node's status.daemonEndpoints.kubeletEndpoint.Port is that tunnel port
  (what kube-apiserver and metrics-server dial); metrics API available; kubectl top node for each
  edge node; kubectl logs, exec and top pod on a Running pod of an edge node (SKIP when there is none)
Read-only: it changes nothing. Run it on the cloud node as root.

  --timeout SECONDS  per kubectl call (default 20)
  --dry-run          list the checks without running them (no connection is opened)
  --log-file PATH    also append the results to PATH
  --help             show this help
Exit status: 0 every check passed or was skipped, 1 at least one FAIL, 2 bad usage,
3 preflight failed (no kubectl/kubeconfig).
USAGE
}

KUBECONFIG_PATH=$(sys /etc/rancher/k3s/k3s.yaml)
TIMEOUT=20
LOG_PATH=""
PASSED=0
FAILED=0
SKIPPED=0
DETAIL=""

readonly KP_COMMON_OPTS="--timeout --dry-run --log-file"

# parse_args ARGS...: reads the common options; dies (exit 2) on anything else.
parse_args() {
  normalize_args "$@"
  set -- "${NORM_ARGS[@]+"${NORM_ARGS[@]}"}"
  while (($#)); do
    case $1 in
      *) common_arg "$@"; shift "$KP_SHIFT" ;;
    esac
  done
}


# check NAME FUNCTION: FUNCTION returns 0 (PASS), 1 (FAIL) or 2 (SKIP) and may set DETAIL.
check() {
  local name=$1 fn=$2 rc=0 status
  DETAIL=""
  if [[ $DRY_RUN == 1 ]]; then
    _kp_emit DRY-RUN "check: $name"
    return 0
  fi
  "$fn" || rc=$?
  case $rc in
    0) status=PASS; PASSED=$((PASSED + 1)) ;;
    2) status=SKIP; SKIPPED=$((SKIPPED + 1)) ;;
    *) status=FAIL; FAILED=$((FAILED + 1)) ;;
  esac
  printf '%-4s  %-46s %s\n' "$status" "$name" "$DETAIL"
  if [[ -n $LOG_FILE ]]; then
    printf '%s %-4s  %-46s %s\n' "$(date '+%Y-%m-%dT%H:%M:%S%z')" "$status" "$name" "$DETAIL" >>"$LOG_FILE"
  fi
}

CLOUDCORE_YAML=""
# cloudcore_yaml: prints the path of a temporary copy of cloudcore.yaml (ConfigMap kubeedge/cloudcore), read once.
cloudcore_yaml() {
  if [[ -z $CLOUDCORE_YAML ]]; then
    CLOUDCORE_YAML=$(mktemp "${TMPDIR:-/tmp}/kp-cloudcore.XXXXXX")
    kc -n kubeedge get configmap cloudcore -o jsonpath='{.data.cloudcore\.yaml}' >"$CLOUDCORE_YAML" 2>/dev/null || true
  fi
  printf '%s' "$CLOUDCORE_YAML"
}
# cleanup: removes the temporary copy of cloudcore.yaml.
cleanup() { [[ -z $CLOUDCORE_YAML ]] || rm -f -- "$CLOUDCORE_YAML"; }

# c_egress: does the K3s unit run with --egress-selector-mode=disabled?
c_egress() {
  local unit
  unit=$(sys /etc/systemd/system/k3s.service)
  [[ -f $unit ]] || { DETAIL="$unit not found"; return 1; }
  grep -q -- '--egress-selector-mode=disabled' "$unit" && { DETAIL="in $unit"; return 0; }
  DETAIL="--egress-selector-mode=disabled missing from $unit"
  return 1
}
# pods_running NAMESPACE SELECTOR: is a pod of SELECTOR Running? (DETAIL: the phases)
pods_running() { # namespace selector
  local phases
  phases=$(kc -n "$1" get pods -l "$2" -o jsonpath='{.items[*].status.phase}' 2>/dev/null) || phases=""
  DETAIL="phases: ${phases:-none}"
  [[ " $phases " == *" Running "* ]]
}
# c_cloudcore: is the CloudCore pod Running?
c_cloudcore() { pods_running kubeedge kubeedge=cloudcore; }
# c_cloudstream: is cloudStream enabled on PORT_STREAM/PORT_TUNNEL?
c_cloudstream() {
  local f e s t
  f=$(cloudcore_yaml)
  e=$(yaml_get "$f" modules.cloudStream.enable) || e=""
  s=$(yaml_get "$f" modules.cloudStream.streamPort) || s=""
  t=$(yaml_get "$f" modules.cloudStream.tunnelPort) || t=""
  DETAIL="enable=${e:-?} streamPort=${s:-default} tunnelPort=${t:-default}"
  [[ $e == true && ${s:-$PORT_STREAM} == "$PORT_STREAM" && ${t:-$PORT_TUNNEL} == "$PORT_TUNNEL" ]]
}
# c_dynamic: is dynamicController enabled?
c_dynamic() {
  local e
  e=$(yaml_get "$(cloudcore_yaml)" modules.dynamicController.enable) || e=""
  DETAIL="enable=${e:-?}"
  [[ $e == true ]]
}
# c_ports: does something listen on PORT_STREAM and PORT_TUNNEL?
c_ports() {
  local p missing=()
  for p in "$PORT_STREAM" "$PORT_TUNNEL"; do
    [[ -n $(listeners "$p") ]] || missing+=("$p")
  done
  if ((${#missing[@]})); then DETAIL="nothing listens on ${missing[*]}"; return 1; fi
  DETAIL="$PORT_STREAM: $(listeners "$PORT_STREAM" | head -n 1)"
}
# The record CloudCore writes at its start, keyed by its own IP; TUNNEL_IP/TUNNEL_PORT: CloudCore's entry.
TUNNEL_IP="" TUNNEL_PORT=""
# c_tunnelport: does the tunnel-port record hold CloudCore's pod IP? Sets TUNNEL_IP/TUNNEL_PORT.
c_tunnelport() {
  local rec entries ips e
  kc -n kubeedge get configmap tunnelport >/dev/null 2>&1 ||
    { DETAIL="ConfigMap kubeedge/tunnelport missing: CloudCore writes it when it starts (is CloudCore running?)"; return 1; }
  rec=$(kc -n kubeedge get configmap tunnelport -o jsonpath='{.metadata.annotations.tunnelportrecord\.kubeedge\.io}' 2>/dev/null) || rec=""
  entries=$(tunnelport_entries "$rec") ||
    { DETAIL="no readable tunnelportrecord.kubeedge.io annotation ('$rec'): CloudCore writes it at start"; return 1; }
  ips=$(kc -n kubeedge get pods -l kubeedge=cloudcore -o jsonpath='{.items[*].status.podIP}' 2>/dev/null) || ips=""
  [[ -n $ips ]] || { DETAIL="record $rec, but no CloudCore pod IP to match it"; return 1; }
  while IFS= read -r e; do
    if [[ " $ips " == *" ${e% *} "* ]]; then
      TUNNEL_IP=${e% *} TUNNEL_PORT=${e#* }
      DETAIL="CloudCore $TUNNEL_IP: tunnel port $TUNNEL_PORT"
      return 0
    fi
  done <<<"$entries"
  DETAIL="record $rec has no entry for CloudCore's IP ($ips): CloudCore re-negotiates at its next start"
  return 1
}
# c_iptables_manager: is iptables-manager Running? (SKIP when it is not deployed)
c_iptables_manager() {
  kc -n kubeedge get daemonset cloud-iptables-manager >/dev/null 2>&1 ||
    { DETAIL="not deployed: the DNAT is KubePrepare's own (manifests/iptables-metrics-setup.sh)"; return 2; }
  pods_running kubeedge k8s-app=iptables-manager
}
# c_dnat: is the DNAT tunnel port -> CloudCore:PORT_STREAM in TUNNEL-PORT or KUBEPREPARE-TUNNEL?
c_dnat() {
  [[ -n $TUNNEL_PORT ]] || { DETAIL="no tunnel port known (see the record check)"; return 1; }
  local to="$TUNNEL_IP:$PORT_STREAM"
  if iptables -w -t nat -C TUNNEL-PORT -p tcp -m tcp --dport "$TUNNEL_PORT" -j DNAT --to-destination "$to" 2>/dev/null; then
    DETAIL="TUNNEL-PORT: tcp/$TUNNEL_PORT -> $to"
  elif iptables -w -t nat -C KUBEPREPARE-TUNNEL -p tcp -m tcp --dport "$TUNNEL_PORT" -m comment --comment kubeprepare-tunnel-port \
    -j DNAT --to-destination "$to" 2>/dev/null; then
    DETAIL="KUBEPREPARE-TUNNEL: tcp/$TUNNEL_PORT -> $to"
  else
    DETAIL="no DNAT tcp/$TUNNEL_PORT -> $to in nat TUNNEL-PORT or KUBEPREPARE-TUNNEL (run manifests/iptables-metrics-setup.sh)"
    return 1
  fi
}
# c_old_rule: is the tcp/PORT_OLD_METRICS rewrite of earlier versions gone from nat OUTPUT?
c_old_rule() {
  local rules
  rules=$(iptables -w -t nat -S OUTPUT 2>/dev/null | grep -- '--comment kubeprepare-metrics-dnat') || rules=""
  [[ -z $rules ]] && { DETAIL="none"; return 0; }
  DETAIL="nat OUTPUT still rewrites every tcp/$PORT_OLD_METRICS (run manifests/iptables-metrics-setup.sh to remove it)"
  return 1
}
# c_stream_sans: does the stream certificate in Secret kubeedge/cloudcore cover every node InternalIP?
c_stream_sans() {
  local crt sans ip missing=()
  crt=$(kc -n kubeedge get secret cloudcore -o jsonpath='{.data.stream\.crt}' 2>/dev/null | base64 -d 2>/dev/null) || crt=""
  [[ -n $crt ]] || { DETAIL="no stream.crt in Secret kubeedge/cloudcore"; return 1; }
  sans=$(printf '%s\n' "$crt" | openssl x509 -noout -text 2>/dev/null | awk '/Subject Alternative Name/ { getline; print }')
  while IFS= read -r ip; do
    [[ -n $ip ]] || continue
    [[ "$sans," == *"IP Address:$ip,"* ]] || missing+=("$ip")
  done < <(kc get nodes -o jsonpath='{range .items[*]}{range .status.addresses[?(@.type=="InternalIP")]}{.address}{"\n"}{end}{end}' 2>/dev/null)
  if ((${#missing[@]})); then
    DETAIL="node IP(s) not in the SANs: ${missing[*]} (scripts/refresh-stream-cert.sh --from-nodes)"
    return 1
  fi
  DETAIL="SANs cover every node InternalIP"
}
EDGE_NODES=()
# c_edge_nodes: are all edge nodes Ready? Fills EDGE_NODES (SKIP without any).
c_edge_nodes() {
  local line not_ready=()
  mapfile -t EDGE_NODES < <(kc get nodes -l node-role.kubernetes.io/edge -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' 2>/dev/null | grep -v '^$')
  ((${#EDGE_NODES[@]})) || { DETAIL="no edge node joined yet"; return 2; }
  while IFS= read -r line; do
    [[ $line == *=True ]] || not_ready+=("${line%%=*}")
  done < <(kc get nodes -l node-role.kubernetes.io/edge -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}')
  if ((${#not_ready[@]})); then DETAIL="not Ready: ${not_ready[*]}"; return 1; fi
  DETAIL="${#EDGE_NODES[@]} Ready: ${EDGE_NODES[*]}"
}
# c_kubelet_ports: is each edge node's kubeletEndpoint port the tunnel port?
c_kubelet_ports() {
  ((${#EDGE_NODES[@]})) || { DETAIL="no edge node joined yet"; return 2; }
  [[ -n $TUNNEL_PORT ]] || { DETAIL="no tunnel port known (see the record check)"; return 1; }
  local line wrong=()
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    [[ ${line#*=} == "$TUNNEL_PORT" ]] || wrong+=("${line%%=*}:${line#*=}")
  done < <(kc get nodes -l node-role.kubernetes.io/edge -o jsonpath='{range .items[*]}{.metadata.name}={.status.daemonEndpoints.kubeletEndpoint.Port}{"\n"}{end}' 2>/dev/null)
  if ((${#wrong[@]})); then
    DETAIL="not $TUNNEL_PORT: ${wrong[*]} (CloudCore sets it when the edge's stream tunnel connects: check edgeStream on that edge)"
    return 1
  fi
  DETAIL="all $TUNNEL_PORT"
}
# c_metrics_api: is APIService v1beta1.metrics.k8s.io Available?
c_metrics_api() {
  local s
  s=$(kc get apiservice v1beta1.metrics.k8s.io -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null) || s=""
  DETAIL="Available=${s:-unknown}"
  [[ $s == True ]]
}
# c_top: does kubectl top node give metrics for every edge node?
c_top() {
  ((${#EDGE_NODES[@]})) || { DETAIL="no edge node joined yet"; return 2; }
  local node out missing=()
  for node in "${EDGE_NODES[@]}"; do
    out=$(kc top node "$node" --no-headers 2>&1) || missing+=("$node")
  done
  if ((${#missing[@]})); then DETAIL="no metrics for ${missing[*]}: $(printf '%s' "$out" | head -n 1)"; return 1; fi
  DETAIL="${#EDGE_NODES[@]} edge node(s) with metrics"
}
EDGE_POD=""
# find_edge_pod: sets EDGE_POD (namespace/name) to a Running pod on an edge node; status 1 when none.
find_edge_pod() {
  local node
  [[ -n $EDGE_POD ]] && return 0
  for node in "${EDGE_NODES[@]+"${EDGE_NODES[@]}"}"; do
    EDGE_POD=$(kc get pods -A --field-selector "spec.nodeName=$node,status.phase=Running" \
      -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}' 2>/dev/null | head -n 1) || EDGE_POD=""
    [[ -n $EDGE_POD ]] && return 0
  done
  return 1
}
# c_logs: does kubectl logs work on an edge pod?
c_logs() {
  find_edge_pod || { DETAIL="no Running pod on an edge node"; return 2; }
  local out
  out=$(kc logs -n "${EDGE_POD%%/*}" "${EDGE_POD#*/}" --tail=1 2>&1) || { DETAIL="$EDGE_POD: $(printf '%s' "$out" | head -n 1)"; return 1; }
  DETAIL="kubectl logs $EDGE_POD"
}
# c_exec: does kubectl exec work on an edge pod?
c_exec() {
  find_edge_pod || { DETAIL="no Running pod on an edge node"; return 2; }
  local out
  if out=$(kc exec -n "${EDGE_POD%%/*}" "${EDGE_POD#*/}" -- sh -c 'exit 0' 2>&1) ||
    out=$(kc exec -n "${EDGE_POD%%/*}" "${EDGE_POD#*/}" -- true 2>&1); then
    DETAIL="kubectl exec $EDGE_POD"
    return 0
  fi
  DETAIL="$EDGE_POD: $(printf '%s' "$out" | head -n 1)"
  return 1
}
# c_top_pod: does kubectl top pod work on an edge pod?
c_top_pod() {
  find_edge_pod || { DETAIL="no Running pod on an edge node"; return 2; }
  local out
  out=$(kc top pod -n "${EDGE_POD%%/*}" "${EDGE_POD#*/}" --no-headers 2>&1) || { DETAIL="$EDGE_POD: $(printf '%s' "$out" | head -n 1)"; return 1; }
  DETAIL="kubectl top pod $EDGE_POD"
}

# main ARGS...: runs every check, prints the counts; exit 1 on a FAIL.
main() {
  parse_args "$@"
  KC_OPTS=(--request-timeout="${TIMEOUT}s")
  [[ -n $LOG_PATH ]] && log_init "$LOG_PATH"
  need_cmd awk grep openssl base64 ss iptables
  [[ $DRY_RUN == 1 || -f $KUBECONFIG_PATH ]] || die_preflight "$KUBECONFIG_PATH not found: is K3s installed on this node?"
  trap cleanup EXIT
  check "K3s egress-selector-mode=disabled" c_egress
  check "CloudCore pod Running" c_cloudcore
  check "cloudStream enabled ($PORT_STREAM/$PORT_TUNNEL)" c_cloudstream
  check "dynamicController enabled" c_dynamic
  check "CloudCore listening on $PORT_STREAM/$PORT_TUNNEL" c_ports
  check "tunnel-port record holds CloudCore's IP" c_tunnelport
  check "iptables-manager Running" c_iptables_manager
  check "DNAT tunnel port -> CloudCore:$PORT_STREAM" c_dnat
  check "no old tcp/$PORT_OLD_METRICS rewrite" c_old_rule
  check "stream certificate SANs" c_stream_sans
  check "stream certificate served on :$PORT_STREAM" stream_cert_check
  check "edge nodes Ready" c_edge_nodes
  check "edge kubeletEndpoint port = tunnel port" c_kubelet_ports
  check "metrics API (v1beta1.metrics.k8s.io)" c_metrics_api
  check "kubectl top node (edge nodes)" c_top
  check "kubectl logs on an edge pod" c_logs
  check "kubectl exec on an edge pod" c_exec
  check "kubectl top pod on an edge pod" c_top_pod
  if [[ $DRY_RUN == 1 ]]; then
    printf '\ndry run: the checks above were listed, not run\n'
    return 0
  fi
  printf '\n%d passed, %d failed, %d skipped\n' "$PASSED" "$FAILED" "$SKIPPED"
  if ((FAILED > 0)); then
    exit 1
  fi
}

main "$@"
