#!/usr/bin/env bash
# configure-edgecore.sh: sets the edgecore.yaml keys kubectl logs/exec/top and EdgeMesh need
# (bundle {{bundleName}}).
{{> shell-lib}}
{{> yaml-tool}}

readonly PORT_TUNNEL={{ports.tunnel}}
readonly EDGE_META_SERVER={{sq edge.metaServer}} EDGE_CLUSTER_DNS={{sq edge.clusterDNS}}
readonly EDGE_CLUSTER_DOMAIN={{sq edge.clusterDomain}} EDGE_KUBELET_ADDRESS={{sq edge.kubeletAddress}}

# usage: prints the help text.
usage() {
  cat <<USAGE
Usage: $SCRIPT_NAME --cloud-ip IP [--config PATH] [--no-restart] [--timeout SECONDS]
                    [--dry-run] [--log-file PATH] [--help]

Edits edgecore.yaml as a structured document (an awk reader of its block YAML that only touches
the keys below; every other line is kept byte for byte), then reads every key back and fails if
one does not hold its value:
  modules.edgeStream.enable                            true
  modules.edgeStream.server                            <cloud-ip>:$PORT_TUNNEL
  modules.edgeStream.tlsTunnelCAFile                   /etc/kubeedge/ca/rootCA.crt
  modules.edgeStream.tlsTunnelCertFile                 /etc/kubeedge/certs/server.crt
  modules.edgeStream.tlsTunnelPrivateKeyFile           /etc/kubeedge/certs/server.key
  modules.metaManager.metaServer.enable                true
  modules.metaManager.metaServer.server                $EDGE_META_SERVER
  modules.edged.tailoredKubeletConfig.clusterDNS       [$EDGE_CLUSTER_DNS]  (EdgeMesh DNS)
  modules.edged.tailoredKubeletConfig.clusterDomain    $EDGE_CLUSTER_DOMAIN
  modules.edged.tailoredKubeletConfig.address          $EDGE_KUBELET_ADDRESS  (no external kubelet port)
Once edgecore holds its certificates (modules.edgeHub.tlsCertFile and tlsPrivateKeyFile exist), the
join token keadm join copies into modules.edgeHub.token is cleared as well (edgecore does the same).
Before the first change the file is copied to edgecore.yaml.bak.<timestamp> (mode 0600: it may hold
the token); when nothing has to change, nothing is written and edgecore is not restarted. Before a
change edgecore is stopped (it rewrites edgecore.yaml from its memory when it drops the token, which
would undo the edit), and started again after it; the keys are read back after the write and again
once edgecore is running.

  --cloud-ip IP      the cloud node (CloudStream tunnel on port $PORT_TUNNEL)        [required]
  --config PATH      default /etc/kubeedge/config/edgecore.yaml
  --no-restart       do not stop/start edgecore around a change
  --timeout SECONDS  how long to wait for edgecore to be active again (default 120)
  --dry-run          show the changes, write nothing
  --log-file PATH    also append the log to PATH
  --help             show this help
Exit status: 0 ok, 1 a step failed, 2 bad usage, 3 preflight failed, 4 read-back check failed.
USAGE
}

CLOUD_IP=""
CONFIG=$(sys /etc/kubeedge/config/edgecore.yaml)
RESTART=1
TIMEOUT=120
LOG_PATH=""

readonly KP_COMMON_OPTS="--timeout --dry-run --log-file"

# parse_args ARGS...: reads the options into CLOUD_IP, CONFIG, RESTART; dies (exit 2) on bad usage.
parse_args() {
  normalize_args "$@"
  set -- "${NORM_ARGS[@]+"${NORM_ARGS[@]}"}"
  while (($#)); do
    case $1 in
      --cloud-ip) need_value "$1" "$#" "${2-}"; CLOUD_IP=$2; shift 2 ;;
      --config) need_value "$1" "$#" "${2-}"; CONFIG=$2; shift 2 ;;
      --no-restart) RESTART=0; shift ;;
      *) common_arg "$@"; shift "$KP_SHIFT" ;;
    esac
  done
  [[ -n $CLOUD_IP ]] || die_usage "--cloud-ip is required"
  is_host_ipv4 "$CLOUD_IP" || die_usage "--cloud-ip: '$CLOUD_IP' is not a usable IPv4 address"
}

# desired: prints path|kind|value: the fixed settings, then the token line when decide_token set one.
desired() {
  cat <<SETTINGS
modules.edgeStream.enable|scalar|true
modules.edgeStream.server|scalar|$CLOUD_IP:$PORT_TUNNEL
modules.edgeStream.tlsTunnelCAFile|scalar|/etc/kubeedge/ca/rootCA.crt
modules.edgeStream.tlsTunnelCertFile|scalar|/etc/kubeedge/certs/server.crt
modules.edgeStream.tlsTunnelPrivateKeyFile|scalar|/etc/kubeedge/certs/server.key
modules.metaManager.metaServer.enable|scalar|true
modules.metaManager.metaServer.server|scalar|$EDGE_META_SERVER
modules.edged.tailoredKubeletConfig.clusterDNS|list|$EDGE_CLUSTER_DNS
modules.edged.tailoredKubeletConfig.clusterDomain|scalar|$EDGE_CLUSTER_DOMAIN
modules.edged.tailoredKubeletConfig.address|scalar|$EDGE_KUBELET_ADDRESS
SETTINGS
  printf '%s' "$TOKEN_SETTING"
}

# decide_token: sets TOKEN_SETTING to one more desired line (an empty token) once edgecore has its certificates.
# The join token, once edgecore no longer needs it (its certificates exist): sets TOKEN_SETTING to
# one more desired line, or leaves it empty.
decide_token() {
  local token cert key rc=0
  token=$(yaml_get "$WORK" modules.edgeHub.token) || rc=$?
  ((rc == 0)) || return 0
  [[ -n $token && $token != '""' && $token != "''" ]] || return 0
  cert=$(yaml_get "$WORK" modules.edgeHub.tlsCertFile) || return 0
  key=$(yaml_get "$WORK" modules.edgeHub.tlsPrivateKeyFile) || return 0
  if [[ -s $(sys "$cert") && -s $(sys "$key") ]]; then
    TOKEN_SETTING=$'modules.edgeHub.token|scalar|""\n'
  else
    log "keeping modules.edgeHub.token: edgecore has no certificates yet ($cert), it still needs the token"
  fi
}

# read_back WHEN: reads every desired key from CONFIG on disk; dies (exit 4) naming those that do not hold their value.
read_back() { # when
  local path kind value old bad=()
  while IFS='|' read -r path kind value; do
    old=$(yaml_get "$CONFIG" "$path") || old="<absent>"
    holds "$old" "$value" || bad+=("$path=$(shown "$path" "$old") (want $value)")
  done < <(desired)
  ((${#bad[@]} == 0)) || die_verify "$CONFIG does not hold the new settings $1: ${bad[*]} (backup in $BACKUP)"
  log "read back $1: all settings present in $CONFIG"
}

# holds VALUE WANTED: does VALUE read back (yaml_get removes quotes) hold WANTED?
holds() { [[ $1 == "$2" || ($2 == '""' && -z $1) ]]; }

# shown PATH VALUE: prints VALUE as it may appear in the log: never the token itself.
shown() { # path value
  if [[ $1 == modules.edgeHub.token && -n $2 && $2 != '""' ]]; then printf '<join token>'; else printf '%s' "$2"; fi
}

WORK=""
NEXT=""
BACKUP=""
TOKEN_SETTING=""
# cleanup: removes the temporary files WORK and NEXT.
cleanup() { rm -f -- "$WORK" "$NEXT"; }

# main ARGS...: edits a copy of CONFIG, and when it changed: stops edgecore, backs up, installs it, restarts, reads back.
main() {
  parse_args "$@"
  [[ -n $LOG_PATH ]] && log_init "$LOG_PATH"
  need_cmd awk cmp cp mv mktemp date
  [[ -f $CONFIG ]] || die_preflight "$CONFIG not found (keadm join writes it)"
  need_root

  local path kind value old changes=() rc
  WORK=$(mktemp "${TMPDIR:-/tmp}/kp-edgecore.XXXXXX")
  NEXT=$(mktemp "${TMPDIR:-/tmp}/kp-edgecore.XXXXXX")
  trap cleanup EXIT
  cp -- "$CONFIG" "$WORK"
  decide_token

  while IFS='|' read -r path kind value; do
    rc=0
    old=$(yaml_get "$WORK" "$path") || rc=$?
    ((rc == 0 || rc == 3)) || die "cannot read $path from $CONFIG (awk status $rc)"
    ((rc == 3)) && old="<absent>"
    if holds "$old" "$value"; then
      log "ok        $path = $value"
      continue
    fi
    rc=0
    if [[ $kind == list ]]; then
      yaml_set_list "$WORK" "$path" "$value" >"$NEXT" || rc=$?
    else
      yaml_set "$WORK" "$path" "$value" >"$NEXT" || rc=$?
    fi
    case $rc in
      0) ;;
      3) die "cannot set $path: its parent mapping is not in $CONFIG (not an edgecore v1alpha2 config?)" ;;
      4) die "cannot set $path: it holds a mapping in $CONFIG, not a value" ;;
      *) die "editing $path failed (awk status $rc)" ;;
    esac
    cp -- "$NEXT" "$WORK"
    changes+=("$path: $(shown "$path" "$old") -> $value")
    log "change    $path: $(shown "$path" "$old") -> $value"
  done < <(desired)

  if ((${#changes[@]} == 0)); then
    log "$CONFIG already has every setting: nothing to change"
  else
    BACKUP="$CONFIG.bak.$(date +%Y%m%d%H%M%S)"
    if [[ $DRY_RUN == 1 ]]; then
      ((RESTART == 0)) || _kp_emit DRY-RUN "systemctl stop edgecore"
      _kp_emit DRY-RUN "cp $CONFIG $BACKUP (mode 0600), then write ${#changes[@]} change(s) to $CONFIG"
    else
      if ((RESTART)); then
        log "stopping edgecore first: it rewrites $CONFIG from memory when it drops the join token"
        run systemctl stop edgecore
      fi
      (umask 077 && cp -- "$CONFIG" "$BACKUP")
      chmod 0600 -- "$BACKUP"
      log "backup: $BACKUP"
      # same directory, then rename: the file is never half-written
      local tmp
      tmp=$(mktemp "$CONFIG.kp.XXXXXX")
      cat -- "$WORK" >"$tmp"
      chmod --reference="$CONFIG" -- "$tmp" 2>/dev/null || chmod 0644 -- "$tmp"
      mv -f -- "$tmp" "$CONFIG"
      read_back "after the write"
    fi
  fi

  printf '\nedgecore.yaml (%s): %d change(s)\n' "$CONFIG" "${#changes[@]}"
  local c
  for c in "${changes[@]+"${changes[@]}"}"; do printf '  %s\n' "$c"; done

  # started after a change, and also when nothing changed but edgecore is down (a run that stopped
  # while waiting for it): a rerun converges
  local down=0
  if ((${#changes[@]} == 0)) && [[ $RESTART == 1 ]] && ! systemctl is-active --quiet edgecore; then
    log "edgecore is not active: starting it"
    down=1
  fi
  if { ((${#changes[@]} > 0)) || ((down)); } && [[ $RESTART == 1 ]]; then
    run systemctl start edgecore
    wait_for "$TIMEOUT" "edgecore to be active" systemctl is-active --quiet edgecore
    [[ $DRY_RUN == 1 ]] || read_back "with edgecore running"
  fi
}

main "$@"
