#!/usr/bin/env bash
# iptables-metrics-setup.sh: the DNAT that carries kube-apiserver's and metrics-server's kubelet
# connections to edge nodes (<edge-ip>:<tunnel port>) into CloudCore's CloudStream port.
# Bundle {{bundleName}}.
{{> shell-lib}}
{{> yaml-tool}}

readonly OUR_CHAIN=KUBEPREPARE-TUNNEL OUR_COMMENT=kubeprepare-tunnel-port
readonly UPSTREAM_CHAIN=TUNNEL-PORT UPSTREAM_JUMP_COMMENT="kubeedge tunnel port"
# what the scripts of earlier KubePrepare versions added (nat OUTPUT, every tcp/10350 of the host)
readonly OLD_PORT={{ports.kubeletMetrics}} OLD_COMMENT=kubeprepare-metrics-dnat
readonly UNIT_NAME=kubeprepare-tunnel-dnat.service
readonly DEFAULT_STREAM_PORT={{ports.cloudStream}} TOOL_VERSION={{sq toolVersion}}
# the first CloudCore's tunnel port (dry_run_plan)
readonly FIRST_TUNNEL_PORT={{ports.tunnelVirtual}}

# usage: prints the help text.
usage() {
  cat <<USAGE
Usage: $SCRIPT_NAME [--rules auto|upstream|ours] [--cloudcore-ip IP] [--stream-port PORT]
                    [--remove] [--no-persist] [--timeout SECONDS] [--dry-run] [--log-file PATH] [--help]

KubeEdge v1.22 path of kubectl logs/exec/top to an edge node: CloudCore negotiates a tunnel port
(10351 for the first CloudCore, then 10352...) and records it in the annotation
tunnelportrecord.kubeedge.io of ConfigMap kubeedge/tunnelport, keyed by CloudCore's own IP:
  {"ipTunnelPort":{"<cloudcore-ip>":10351},"port":{"10351":true}}
It sets every edge node's status.daemonEndpoints.kubeletEndpoint.Port to that port when the edge
connects its stream tunnel; kube-apiserver and metrics-server (--kubelet-use-node-status-port) then
dial <edge-ip>:10351, and a nat rule sends that to <cloudcore-ip>:<stream port> (CloudStream).
iptables-manager (or CloudCore itself in internal mode) keeps those rules in chain $UPSTREAM_CHAIN,
jumped to from nat OUTPUT and PREROUTING:
  -A $UPSTREAM_CHAIN -p tcp -m tcp --dport <tunnel port> -j DNAT --to-destination <cloudcore-ip>:<stream port>

This script reads the record and the edge nodes' kubelet ports, then
  * upstream manages the rules (the cloud-iptables-manager DaemonSet exists, or CloudCore runs
    iptablesManager in internal mode): VERIFIES that $UPSTREAM_CHAIN holds the DNAT of every
    recorded tunnel port (waits up to --timeout for it), and removes rules of ours if any;
  * otherwise (iptablesManager disabled, the DaemonSet deleted, or --rules ours): installs exactly
    those rules in a chain of its own, $OUR_CHAIN, jumped to from nat OUTPUT and PREROUTING,
    one rule per recorded tunnel port, nothing else; stale rules of that chain are deleted.
    Unless --no-persist it also installs $UNIT_NAME (a oneshot unit ordered after
    k3s.service) that re-runs this script at boot: only our rules are restored, never a saved
    ruleset.
In both cases the rule of older KubePrepare versions (nat OUTPUT tcp/$OLD_PORT, comment
$OLD_COMMENT, which rewrote every tcp/$OLD_PORT the host sent) is deleted. Idempotent.

  --rules MODE        auto (default: detect as above), upstream (verify only), ours (install ours)
  --cloudcore-ip IP   the CloudCore address expected in the record (a different one is a warning:
                      the rules follow the record, as iptables-manager does). Default: NODE_IP
                      from /etc/kubeprepare/cloud.env when present.
  --stream-port PORT  CloudStream port, the DNAT target port (default $DEFAULT_STREAM_PORT)
  --remove            delete our chain, its jumps, the old rule and $UNIT_NAME (not upstream's rules)
  --no-persist        do not install (or, with --remove, do not delete) the boot unit
  --timeout SECONDS   wait for the API, the record and upstream's rules (default 120)
  --dry-run           print what would change; no iptables or kubectl write, no file written
  --log-file PATH     also append the log to PATH
  --help              show this help
Exit status: 0 ok, 1 an iptables command failed, 2 bad usage, 3 preflight failed,
4 verification failed (upstream's rules missing), 5 timed out waiting for the API or the record.
USAGE
}

RULES_MODE=auto
CLOUDCORE_IP=""
STREAM_PORT=$DEFAULT_STREAM_PORT
REMOVE=0
PERSIST=1
TIMEOUT=120
LOG_PATH=""
KUBECONFIG_PATH=$(sys /etc/rancher/k3s/k3s.yaml)
UNIT_FILE=$(sys /etc/systemd/system/$UNIT_NAME)
# the copy the boot unit runs (the unpacked bundle may be deleted after the install)
BOOT_COPY=$(sys /usr/local/lib/kubeprepare/iptables-metrics-setup.sh)
readonly KP_COMMON_OPTS="--timeout --dry-run --log-file"

normalize_args "$@"
set -- "${NORM_ARGS[@]+"${NORM_ARGS[@]}"}"
while (($#)); do
  case $1 in
    --rules) need_value "$1" "$#" "${2-}"; RULES_MODE=$2; shift 2 ;;
    --cloudcore-ip) need_value "$1" "$#" "${2-}"; CLOUDCORE_IP=$2; shift 2 ;;
    --stream-port) need_value "$1" "$#" "${2-}"; STREAM_PORT=$2; shift 2 ;;
    --remove) REMOVE=1; shift ;;
    --no-persist) PERSIST=0; shift ;;
    *) common_arg "$@"; shift "$KP_SHIFT" ;;
  esac
done
case $RULES_MODE in
  auto | upstream | ours) ;;
  *) die_usage "--rules: '$RULES_MODE' is not one of auto, upstream, ours" ;;
esac
is_port "$STREAM_PORT" || die_usage "--stream-port: '$STREAM_PORT' is not a TCP port (1-65535)"
if [[ -n $CLOUDCORE_IP ]]; then
  is_host_ipv4 "$CLOUDCORE_IP" || die_usage "--cloudcore-ip: '$CLOUDCORE_IP' is not a usable IPv4 address"
elif [[ $REMOVE == 0 ]]; then
  CLOUDCORE_IP=$(state_get "$KP_STATE_DIR/cloud.env" NODE_IP)
fi
[[ -n $LOG_PATH ]] && log_init "$LOG_PATH"

need_root
need_cmd iptables awk sed grep tr cut paste mktemp

IPT=(iptables -w -t nat)

KC_OPTS=(--request-timeout=20s)

# chain_rules CHAIN: the "-A CHAIN ..." lines of iptables -S (nothing when the chain does not exist).
chain_rules() {
  local out
  out=$("${IPT[@]}" -S "$1" 2>/dev/null) || return 0
  awk -v c="$1" '$1 == "-A" && $2 == c' <<<"$out"
}
# chain_exists CHAIN: does nat CHAIN exist?
chain_exists() { "${IPT[@]}" -S "$1" >/dev/null 2>&1; }

# delete_rule_line LINE: deletes a rule given as an "-A CHAIN ..." line of iptables -S.
delete_rule_line() {
  local line=$1 words=()
  if [[ $line == *'"'* ]]; then
    warn "not touching a rule with a quoted comment, delete it by hand: $line"
    return 0
  fi
  read -ra words <<<"$line"
  run "${IPT[@]}" -D "${words[@]:1}"
}

# ---- the record and the nodes ----
RECORD=""
ENTRIES=() # "ip port" for each CloudCore of the record
# read_record: reads the tunnel-port record of ConfigMap kubeedge/tunnelport into RECORD; status 1 when there is none.
read_record() {
  RECORD=$(kc -n kubeedge get configmap tunnelport -o jsonpath='{.metadata.annotations.tunnelportrecord\.kubeedge\.io}' 2>/dev/null) || RECORD=""
  [[ -n $RECORD ]]
}
# parse_record: fills ENTRIES ("ip port" per CloudCore) from RECORD; dies when it cannot be read.
parse_record() {
  local e
  ENTRIES=()
  e=$(tunnelport_entries "$RECORD") || die_verify "ConfigMap kubeedge/tunnelport: cannot read the record '$RECORD'"
  mapfile -t ENTRIES <<<"$e"
}
# record_ports: prints the tunnel port of each entry of ENTRIES, one a line.
record_ports() { local e; for e in "${ENTRIES[@]}"; do printf '%s\n' "${e#* }"; done; }

# check_nodes: warns for each edge node whose kubelet port is not a recorded tunnel port.
check_nodes() {
  local line name port ports
  ports=" $(record_ports | paste -sd' ' -) "
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    name=${line%%=*} port=${line#*=}
    if [[ $ports == *" $port "* ]]; then
      log "edge node $name: kubeletEndpoint port $port (a recorded tunnel port)"
    else
      warn "edge node $name: kubeletEndpoint port ${port:-unset} is not a recorded tunnel port (${ports# }):" \
        "its stream tunnel has not connected to CloudCore yet (edgecore edgeStream), so logs/exec/top to it fail"
    fi
  done < <(kc get nodes -l node-role.kubernetes.io/edge -o jsonpath='{range .items[*]}{.metadata.name}={.status.daemonEndpoints.kubeletEndpoint.Port}{"\n"}{end}' 2>/dev/null)
}

# upstream_manages: prints who keeps TUNNEL-PORT, or returns 1 when nobody does.
upstream_manages() {
  local f enable mode
  if kc -n kubeedge get daemonset cloud-iptables-manager >/dev/null 2>&1; then
    printf 'iptables-manager (DaemonSet kubeedge/cloud-iptables-manager, external mode)'
    return 0
  fi
  f=$(mktemp "${TMPDIR:-/tmp}/kp-cloudcore.XXXXXX")
  kc -n kubeedge get configmap cloudcore -o jsonpath='{.data.cloudcore\.yaml}' >"$f" 2>/dev/null || true
  enable=$(yaml_get "$f" modules.iptablesManager.enable) || enable=""
  mode=$(yaml_get "$f" modules.iptablesManager.mode) || mode=""
  rm -f -- "$f"
  # CloudCore runs the manager itself when the module is absent or enabled in internal mode.
  if [[ $enable != false && $mode != external ]]; then
    printf 'CloudCore (iptablesManager internal mode)'
    return 0
  fi
  return 1
}

# ---- rules ----
# remove_old_rule: deletes the tcp/OLD_PORT DNAT of earlier KubePrepare versions; warns about saved rulesets holding it.
remove_old_rule() {
  local line found=0
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    if [[ $line == *" --comment $OLD_COMMENT "* ]]; then
      log "removing the rule of an earlier KubePrepare version (it rewrote every tcp/$OLD_PORT of this host): $line"
      delete_rule_line "$line"
      found=1
    elif [[ $line == *" --dport $OLD_PORT "* && $line == *" -j DNAT "* ]]; then
      warn "a DNAT of every tcp/$OLD_PORT that KubePrepare did not add is in nat OUTPUT (left alone, check it): $line"
    fi
  done < <(chain_rules OUTPUT)
  local f
  for f in "$(sys /etc/iptables/rules.v4)" "$(sys /etc/sysconfig/iptables)"; do
    if [[ -f $f ]] && grep -q -- "$OLD_COMMENT" "$f" 2>/dev/null; then
      warn "$f holds a whole ruleset saved by an earlier KubePrepare version (stale K3s/flannel rules and" \
        "the old tcp/$OLD_PORT DNAT come back from it at boot): remove that file or the lines you do not want" \
        "(see the README, 'Upgrading a site')"
    fi
  done
  [[ $found == 1 ]] && log "the old tcp/$OLD_PORT rule is gone"
  return 0
}

# ensure_rule CHAIN RULE...: appends RULE to nat CHAIN unless iptables -C finds it (read back).
ensure_rule() { # CHAIN RULE...: appends RULE to CHAIN unless iptables -C finds it
  local chain=$1
  shift
  if "${IPT[@]}" -C "$chain" "$@" 2>/dev/null; then
    return 0
  fi
  run "${IPT[@]}" -A "$chain" "$@"
  if [[ $DRY_RUN == 0 ]]; then
    "${IPT[@]}" -C "$chain" "$@" || die "added to nat $chain but iptables -C does not find it: $*"
  fi
}

# our_rule IP PORT: prints the words of our DNAT rule tcp/PORT -> IP:STREAM_PORT, one a line.
our_rule() { printf '%s\n' -p tcp -m tcp --dport "$2" -m comment --comment "$OUR_COMMENT" -j DNAT --to-destination "$1:$STREAM_PORT"; }

# install_ours: fills our chain OUR_CHAIN with the DNAT of each entry (stale rules removed) and jumps to it.
install_ours() {
  local e ip port line want=() rule=() keep
  log "installing the tunnel-port DNAT in nat $OUR_CHAIN (jumped to from OUTPUT and PREROUTING)"
  chain_exists "$OUR_CHAIN" || run "${IPT[@]}" -N "$OUR_CHAIN"
  for e in "${ENTRIES[@]}"; do
    read -r ip port <<<"$e"
    want+=("-A $OUR_CHAIN -p tcp -m tcp --dport $port -m comment --comment $OUR_COMMENT -j DNAT --to-destination $ip:$STREAM_PORT")
  done
  # stale rules of our chain (an older CloudCore IP or port) go first
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    keep=0
    for e in "${want[@]}"; do [[ $line == "$e" ]] && keep=1; done
    if [[ $keep == 0 ]]; then
      log "removing a stale rule: $line"
      delete_rule_line "$line"
    fi
  done < <(chain_rules "$OUR_CHAIN")
  for e in "${ENTRIES[@]}"; do
    read -r ip port <<<"$e"
    mapfile -t rule < <(our_rule "$ip" "$port")
    ensure_rule "$OUR_CHAIN" "${rule[@]}"
    log "nat $OUR_CHAIN: tcp/$port -> $ip:$STREAM_PORT"
  done
  ensure_rule OUTPUT -m comment --comment "$OUR_COMMENT" -j "$OUR_CHAIN"
  ensure_rule PREROUTING -m comment --comment "$OUR_COMMENT" -j "$OUR_CHAIN"
}

# remove_ours: deletes the jumps to OUR_CHAIN, its rules and the chain.
remove_ours() {
  local chain line
  for chain in OUTPUT PREROUTING; do
    while IFS= read -r line; do
      [[ -n $line && $line == *" -j $OUR_CHAIN"* ]] || continue
      delete_rule_line "$line"
    done < <(chain_rules "$chain")
  done
  if chain_exists "$OUR_CHAIN"; then
    while IFS= read -r line; do
      [[ -n $line ]] && delete_rule_line "$line"
    done < <(chain_rules "$OUR_CHAIN")
    run "${IPT[@]}" -X "$OUR_CHAIN"
    log "removed nat chain $OUR_CHAIN and its jumps"
  fi
}

# upstream_has_all: does UPSTREAM_CHAIN hold the DNAT of every entry, and is it jumped to? (quiet)
upstream_has_all() { # quiet: does TUNNEL-PORT hold every recorded rule, and is it jumped to?
  local e ip port
  for e in "${ENTRIES[@]}"; do
    read -r ip port <<<"$e"
    "${IPT[@]}" -C "$UPSTREAM_CHAIN" -p tcp -m tcp --dport "$port" -j DNAT --to-destination "$ip:$STREAM_PORT" 2>/dev/null || return 1
  done
  "${IPT[@]}" -C OUTPUT -m comment --comment "$UPSTREAM_JUMP_COMMENT" -j "$UPSTREAM_CHAIN" 2>/dev/null || return 1
  "${IPT[@]}" -C PREROUTING -m comment --comment "$UPSTREAM_JUMP_COMMENT" -j "$UPSTREAM_CHAIN" 2>/dev/null || return 1
}

# verify_upstream WHO: waits up to TIMEOUT for WHO to fill UPSTREAM_CHAIN; dies naming the missing rules.
verify_upstream() { # WHO
  local e ip port
  if [[ $DRY_RUN == 1 ]]; then
    if upstream_has_all; then log "nat $UPSTREAM_CHAIN holds the DNAT of every recorded tunnel port"; else
      _kp_emit DRY-RUN "wait up to ${TIMEOUT}s for $1 to fill nat $UPSTREAM_CHAIN"; fi
    return 0
  fi
  if ! upstream_has_all; then
    log "waiting up to ${TIMEOUT}s for $1 to write nat $UPSTREAM_CHAIN (it reconciles every 10s)"
    local start=$SECONDS
    until upstream_has_all; do
      if ((SECONDS - start >= TIMEOUT)); then
        for e in "${ENTRIES[@]}"; do
          read -r ip port <<<"$e"
          "${IPT[@]}" -C "$UPSTREAM_CHAIN" -p tcp -m tcp --dport "$port" -j DNAT --to-destination "$ip:$STREAM_PORT" 2>/dev/null ||
            warn "missing: -A $UPSTREAM_CHAIN -p tcp -m tcp --dport $port -j DNAT --to-destination $ip:$STREAM_PORT"
        done
        die_verify "nat $UPSTREAM_CHAIN lacks the DNAT of the recorded tunnel port(s) after ${TIMEOUT}s:" \
          "check $1 (kubectl -n kubeedge logs -l k8s-app=iptables-manager), or run $SCRIPT_NAME --rules ours"
      fi
      sleep "${KP_POLL_INTERVAL:-5}"
    done
  fi
  for e in "${ENTRIES[@]}"; do
    read -r ip port <<<"$e"
    log "verified: nat $UPSTREAM_CHAIN -p tcp --dport $port -j DNAT --to-destination $ip:$STREAM_PORT (kept by $1)"
  done
}

# ---- the boot unit (our rules only) ----
# unit_text: prints the boot unit UNIT_NAME that re-applies our rules after K3s starts.
unit_text() {
  cat <<UNIT
# Written by KubePrepare $TOOL_VERSION ($BUNDLE_NAME), manifests/$SCRIPT_NAME.
# Re-applies ONLY KubePrepare's own nat chain $OUR_CHAIN (the KubeEdge tunnel-port DNAT, used when
# iptables-manager does not run) after K3s has started; no saved ruleset is restored.
[Unit]
Description=KubePrepare tunnel-port DNAT to CloudCore's CloudStream port ($OUR_CHAIN)
Wants=network-online.target
After=network-online.target k3s.service

[Service]
Type=oneshot
RemainAfterExit=yes
TimeoutStartSec=900
ExecStart=/usr/local/lib/kubeprepare/iptables-metrics-setup.sh --no-persist --timeout 600 --stream-port $STREAM_PORT

[Install]
WantedBy=multi-user.target
UNIT
}

# persist_ours: installs the boot copy of this script and its unit, enabled (skipped with --no-persist).
persist_ours() {
  [[ $PERSIST == 1 ]] || { log "not installing $UNIT_NAME (--no-persist)"; return 0; }
  install_file "$0" "$BOOT_COPY" 0755
  unit_text | write_file "$UNIT_FILE" 0644
  if last_write_changed; then
    run systemctl daemon-reload
    run systemctl enable "$UNIT_NAME"
  elif ! systemctl is-enabled --quiet "$UNIT_NAME" 2>/dev/null; then
    run systemctl enable "$UNIT_NAME"
  fi
}

# unpersist: disables and removes the boot unit and the boot copy.
unpersist() {
  [[ $PERSIST == 1 ]] || return 0
  if [[ -f $UNIT_FILE ]]; then
    run systemctl disable "$UNIT_NAME"
    run rm -f -- "$UNIT_FILE"
    run systemctl daemon-reload
  fi
  if [[ -e $BOOT_COPY ]]; then run rm -f -- "$BOOT_COPY"; fi
}

# ---- main ----
remove_old_rule
if [[ $REMOVE == 1 ]]; then
  remove_ours
  unpersist
  log "KubePrepare's tunnel-port rules removed (iptables-manager's $UPSTREAM_CHAIN is not ours and stays)"
  exit 0
fi

# dry_run_plan: what a run would do, asking the K3s API nothing (a dry run opens no connection): the
# rules shown are those for the record a one-node cloud gets, {"<cloudcore-ip>":FIRST_TUNNEL_PORT} (the
# first CloudCore's tunnel port); a real run follows the record CloudCore wrote.
dry_run_plan() {
  local ip=${CLOUDCORE_IP:-<cloudcore-ip>}
  dry_read "ConfigMap kubeedge/tunnelport (its tunnel-port record), the edge nodes' kubelet ports," \
    "DaemonSet kubeedge/cloud-iptables-manager and ConfigMap kubeedge/cloudcore"
  if [[ $RULES_MODE != ours ]]; then
    _kp_emit DRY-RUN "when iptables-manager or CloudCore keeps nat $UPSTREAM_CHAIN: wait up to ${TIMEOUT}s for its DNAT of every" \
      "recorded tunnel port and remove rules of ours; otherwise, for the record {\"$ip\":$FIRST_TUNNEL_PORT}:"
  fi
  [[ $RULES_MODE == upstream ]] && return 0
  ENTRIES=("$ip $FIRST_TUNNEL_PORT")
  install_ours
  persist_ours
}
if [[ $DRY_RUN == 1 ]]; then
  dry_run_plan
  exit 0
fi
api_up || wait_for "$TIMEOUT" "the K3s API ($KUBECONFIG_PATH)" api_up
wait_for "$TIMEOUT" "ConfigMap kubeedge/tunnelport with its tunnelportrecord.kubeedge.io record (CloudCore writes it at start)" read_record
read_record
parse_record
log "tunnel-port record: $RECORD"
if [[ -n $CLOUDCORE_IP && " $(printf '%s\n' "${ENTRIES[@]}" | cut -d' ' -f1 | paste -sd' ' -) " != *" $CLOUDCORE_IP "* ]]; then
  warn "the record has no entry for $CLOUDCORE_IP: CloudCore took its IP from the host's default-route" \
    "interface; the rules follow the record"
fi
check_nodes

who=""
case $RULES_MODE in
  upstream) who="iptables-manager (--rules upstream)" ;;
  ours) who="" ;;
  auto) who=$(upstream_manages) || who="" ;;
esac
if [[ -n $who ]]; then
  log "the tunnel-port rules are kept by $who"
  verify_upstream "$who"
  if chain_exists "$OUR_CHAIN" || [[ -f $UNIT_FILE ]]; then
    log "removing our own rules: upstream's are in place"
    remove_ours
    unpersist
    if [[ $PERSIST == 0 && -f $UNIT_FILE ]]; then
      warn "$UNIT_NAME is no longer needed: run $SCRIPT_NAME (without --no-persist) or --remove to delete it"
    fi
  fi
else
  if [[ $RULES_MODE == ours ]]; then
    log "--rules ours: installing our own rules"
  else
    log "no iptables-manager (no DaemonSet kubeedge/cloud-iptables-manager, iptablesManager not internal): installing our own rules"
  fi
  install_ours
  persist_ours
  if [[ $DRY_RUN == 0 ]]; then
    log "nat $OUR_CHAIN now:"
    chain_rules "$OUR_CHAIN" | while IFS= read -r line; do log "  $line"; done
  fi
fi
