#!/usr/bin/env bash
# iptables-metrics-setup.sh: routes metrics-server's kubelet scrapes of edge nodes into CloudStream.
# Bundle {{bundleName}}.
{{> shell-lib}}

readonly METRICS_PORT={{ports.kubeletMetrics}}
readonly COMMENT=kubeprepare-metrics-dnat

usage() {
  cat <<USAGE
Usage: $SCRIPT_NAME [--cloudcore-ip IP] [--stream-port PORT] [--remove] [--no-persist]
                    [--dry-run] [--log-file PATH] [--help]

Adds (idempotently) the NAT rule
  iptables -t nat -A OUTPUT -p tcp --dport $METRICS_PORT -m comment --comment $COMMENT \\
           -j DNAT --to-destination <CLOUDCORE_IP>:<STREAM_PORT>
so that metrics-server (hostNetwork, on this node) reaches edge kubelets through CloudCore's
CloudStream port. The rule is checked with -C before -A, so a second run adds nothing; a rule for
port $METRICS_PORT pointing elsewhere (an older address, or a hand-made copy) is replaced.

  --cloudcore-ip IP   where CloudCore listens. CloudCore runs with hostNetwork on this node, so the
                      default is this node's IP as recorded by install.sh (--node-ip, which itself
                      defaults to --advertise-address). The node IP rather than a public advertise
                      address, because a NATed public address is not on this host.
  --stream-port PORT  CloudStream port (default {{ports.cloudStream}})
  --remove            delete every OUTPUT DNAT rule for tcp/$METRICS_PORT (ours and hand-made copies)
  --no-persist        do not save the rules for the next boot
  --dry-run           print the iptables commands instead of running them
  --log-file PATH     also append the log to PATH
  --help              show this help

Persistence: 'netfilter-persistent save' where installed, else iptables-save into
/etc/iptables/rules.v4 (Debian/Ubuntu, when /etc/iptables exists) or /etc/sysconfig/iptables
(RHEL iptables-services, when that file exists); otherwise a warning (re-run this script at boot).
Exit status: 0 ok, 1 an iptables command failed, 2 bad usage, 3 preflight failed.
USAGE
}

CLOUDCORE_IP=""
STREAM_PORT={{ports.cloudStream}}
REMOVE=0
PERSIST=1
LOG_PATH=""
readonly KP_COMMON_OPTS="--dry-run --log-file"
normalize_args "$@"
set -- "${NORM_ARGS[@]+"${NORM_ARGS[@]}"}"
while (($#)); do
  case $1 in
    --cloudcore-ip) need_value "$1" "$#" "${2-}"; CLOUDCORE_IP=$2; shift 2 ;;
    --stream-port) need_value "$1" "$#" "${2-}"; STREAM_PORT=$2; shift 2 ;;
    --remove) REMOVE=1; shift ;;
    --no-persist) PERSIST=0; shift ;;
    *) common_arg "$@"; shift "$KP_SHIFT" ;;
  esac
done

is_port "$STREAM_PORT" || die_usage "--stream-port: '$STREAM_PORT' is not a TCP port (1-65535)"
if [[ $REMOVE == 0 ]]; then
  if [[ -z $CLOUDCORE_IP ]]; then
    CLOUDCORE_IP=$(state_get "$KP_STATE_DIR/cloud.env" NODE_IP)
    [[ -n $CLOUDCORE_IP ]] || die_usage "--cloudcore-ip is required (no install state in $KP_STATE_DIR/cloud.env to take it from)"
    log "CloudCore address from $KP_STATE_DIR/cloud.env: $CLOUDCORE_IP"
  fi
  is_host_ipv4 "$CLOUDCORE_IP" || die_usage "--cloudcore-ip: '$CLOUDCORE_IP' is not a usable IPv4 address"
elif [[ -n $CLOUDCORE_IP ]]; then
  is_ipv4 "$CLOUDCORE_IP" || die_usage "--cloudcore-ip: '$CLOUDCORE_IP' is not an IPv4 address"
fi
[[ -n $LOG_PATH ]] && log_init "$LOG_PATH"

need_root
need_cmd iptables awk

IPT=(iptables -w -t nat)
readonly TARGET="$CLOUDCORE_IP:$STREAM_PORT"
RULE=(-p tcp --dport "$METRICS_PORT" -m comment --comment "$COMMENT" -j DNAT --to-destination "$TARGET")

# Every OUTPUT rule of the nat table that DNATs tcp/METRICS_PORT, as printed by iptables -S.
metrics_rules() {
  local rules
  if ! rules=$("${IPT[@]}" -S OUTPUT 2>&1); then
    if [[ $DRY_RUN == 1 ]]; then
      warn "cannot read the nat table (${rules%%$'\n'*}): the dry run assumes no rule"
      return 0
    fi
    die "iptables -t nat -S OUTPUT failed: $rules"
  fi
  awk -v p="$METRICS_PORT" '$1 == "-A" && / -j DNAT / && (index($0, " --dport " p " ") > 0) { print }' <<<"$rules"
}

delete_rule_line() { # an "-A OUTPUT ..." line of iptables -S
  local line=$1 words=()
  if [[ $line == *'"'* ]]; then
    warn "not touching a rule with a quoted comment, delete it by hand: $line"
    return 0
  fi
  read -ra words <<<"$line"
  run "${IPT[@]}" -D "${words[@]:1}"
}

persist() {
  [[ $PERSIST == 1 ]] || { log "not persisting (--no-persist)"; return 0; }
  if [[ -z $KP_SYSROOT ]] && command -v netfilter-persistent >/dev/null 2>&1; then
    run netfilter-persistent save
  elif [[ -d $(sys /etc/iptables) ]] && command -v iptables-save >/dev/null 2>&1; then
    save_to "$(sys /etc/iptables/rules.v4)"
  elif [[ -f $(sys /etc/sysconfig/iptables) ]] && command -v iptables-save >/dev/null 2>&1; then
    save_to "$(sys /etc/sysconfig/iptables)"
  else
    warn "no iptables persistence found (netfilter-persistent, /etc/iptables, /etc/sysconfig/iptables):" \
      "the rule lasts until reboot; re-run $SCRIPT_NAME at boot or install iptables-persistent"
  fi
}
save_to() {
  if [[ $DRY_RUN == 1 ]]; then
    _kp_emit DRY-RUN "iptables-save > $1"
    return 0
  fi
  log "saving the rules to $1"
  iptables-save | write_file "$1" 0600
}

changed=0
current=$(metrics_rules)
if [[ $REMOVE == 1 ]]; then
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    delete_rule_line "$line"
    changed=1
  done <<<"$current"
  if [[ $changed == 1 ]]; then
    log "removed the DNAT rule(s) for tcp/$METRICS_PORT"
    persist
  else
    log "no DNAT rule for tcp/$METRICS_PORT in nat/OUTPUT: nothing to remove"
  fi
  exit 0
fi

log "metrics DNAT: nat/OUTPUT tcp/$METRICS_PORT -> $TARGET"
# Replace rules for the same port that point elsewhere or lack our comment (first match would win).
while IFS= read -r line; do
  [[ -n $line ]] || continue
  if [[ $line == *" --comment $COMMENT "* && $line == *" --to-destination $TARGET"* ]]; then
    continue
  fi
  log "replacing a stale rule: $line"
  delete_rule_line "$line"
  changed=1
done <<<"$current"

if "${IPT[@]}" -C OUTPUT "${RULE[@]}" 2>/dev/null; then
  log "rule already present"
else
  run "${IPT[@]}" -A OUTPUT "${RULE[@]}"
  changed=1
  if [[ $DRY_RUN == 0 ]]; then
    "${IPT[@]}" -C OUTPUT "${RULE[@]}" || die "the rule was added but iptables -C does not find it"
    log "rule added"
  fi
fi
if [[ $changed == 1 ]]; then
  persist
fi
if [[ $DRY_RUN == 0 ]]; then
  log "nat/OUTPUT rules for tcp/$METRICS_PORT now:"
  metrics_rules | while IFS= read -r line; do log "  $line"; done
fi
