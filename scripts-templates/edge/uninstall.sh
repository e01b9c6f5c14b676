#!/usr/bin/env bash
# uninstall.sh (edge): removes what install.sh installed from bundle {{bundleName}}.
{{> shell-lib}}

# usage: prints the help text.
usage() {
  cat <<USAGE
Usage: $SCRIPT_NAME --yes [--purge-runtime-data] [--dry-run] [--log-file PATH] [--help]

Reverses install.sh:
  1. keadm reset edge --force (stops edgecore, removes its service, /etc/kubeedge, /var/lib/kubeedge)
  2. containerd, runc, CNI plugins and their config, only if install.sh installed them (recorded
     in /etc/kubeprepare/edge-runtime-files); a containerd that was already there is left alone
  3. keadm and /etc/kubeprepare
The node object stays in the cluster: delete it on the cloud (kubectl delete node <name>).

  --yes                 required: confirms the removal
  --purge-runtime-data  also delete /var/lib/containerd (images, containers) of the containerd we installed
  --dry-run             print what would be done (no --yes needed)
  --log-file PATH       default /var/log/kubeprepare-uninstall.log
  --help                show this help
Exit status: 0 ok, 1 a step failed, 2 bad usage (or --yes missing).
USAGE
}

YES=0
PURGE=0
LOG_PATH=$(sys /var/log/kubeprepare-uninstall.log)
KEADM_BIN=$(sys /usr/local/bin/keadm)
KUBEEDGE_DIR=$(sys /etc/kubeedge)
EDGECORE_UNIT=$(sys /etc/systemd/system/edgecore.service)
EDGE_STATE="$KP_STATE_DIR/edge.env"
RUNTIME_FILES="$KP_STATE_DIR/edge-runtime-files"

readonly KP_COMMON_OPTS="--dry-run --log-file"

# parse_args ARGS...: reads --yes and --purge-runtime-data; dies (exit 2) without --yes (unless --dry-run).
parse_args() {
  normalize_args "$@"
  set -- "${NORM_ARGS[@]+"${NORM_ARGS[@]}"}"
  while (($#)); do
    case $1 in
      --yes) YES=1; shift ;;
      --purge-runtime-data) PURGE=1; shift ;;
      *) common_arg "$@"; shift "$KP_SHIFT" ;;
    esac
  done
  if [[ $YES == 0 && $DRY_RUN == 0 ]]; then
    die_usage "refusing to uninstall without --yes (try --dry-run first)"
  fi
}

# reset_edge: keadm reset edge (or edgecore stopped by hand), then /etc/kubeedge removed.
reset_edge() {
  log "== KubeEdge edge =="
  if [[ ! -e $EDGECORE_UNIT && ! -d $KUBEEDGE_DIR ]]; then
    log "edgecore is not installed: nothing to reset"
    return 0
  fi
  if [[ -x $KEADM_BIN ]]; then
    run "$KEADM_BIN" reset edge --force
  else
    warn "keadm not found: stopping edgecore by hand"
    run systemctl disable --now edgecore
    run rm -f -- "$EDGECORE_UNIT"
  fi
  # keadm join refuses a non-empty /etc/kubeedge: leave none behind
  [[ -d $KUBEEDGE_DIR ]] && run rm -rf -- "$KUBEEDGE_DIR"
  return 0
}

# remove_runtime: removes the bundled containerd (the files of RUNTIME_FILES) when KubePrepare installed it.
remove_runtime() {
  log "== container runtime =="
  local mark
  mark=$(state_get "$EDGE_STATE" RUNTIME_INSTALLED_BY)
  # kubeprepare-incomplete: an install that stopped halfway (install.sh install_runtime)
  if [[ $mark != kubeprepare && $mark != kubeprepare-incomplete ]]; then
    log "containerd was not installed by KubePrepare: left as it is"
    return 0
  fi
  run systemctl disable --now containerd
  local f
  if [[ -f $RUNTIME_FILES ]]; then
    while IFS= read -r f; do
      [[ $f == /* && $f != */../* ]] || continue
      [[ -e $(sys "$f") ]] && run rm -f -- "$(sys "$f")"
    done <"$RUNTIME_FILES"
  fi
  run systemctl daemon-reload
  if [[ $PURGE == 1 ]]; then
    run rm -rf -- "$(sys /var/lib/containerd)" "$(sys /run/containerd)"
  fi
}

# main ARGS...: runs the uninstall steps.
main() {
  parse_args "$@"
  log_init "$LOG_PATH"
  [[ $DRY_RUN == 1 ]] && log "DRY RUN: nothing on this host will be changed"
  need_root
  need_cmd systemctl rm
  reset_edge
  remove_runtime
  [[ -e $KEADM_BIN ]] && run rm -f -- "$KEADM_BIN"
  if [[ -d $KP_STATE_DIR ]]; then
    run rm -rf -- "$KP_STATE_DIR"
  fi
  log "uninstall finished; on the cloud node: kubectl delete node <this node>"
}

main "$@"
