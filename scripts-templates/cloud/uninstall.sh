#!/usr/bin/env bash
# uninstall.sh (cloud): removes what install.sh installed from bundle {{bundleName}}.
{{> shell-lib}}

readonly PORT_OLD_METRICS={{ports.kubeletMetrics}}

# usage: prints the help text.
usage() {
  cat <<USAGE
Usage: $SCRIPT_NAME --yes [--keep-k3s] [--dry-run] [--log-file PATH] [--help]

Reverses install.sh, in this order:
  1. metrics-server (manifests/metrics-server.yaml), and KubePrepare's own tunnel-port DNAT
     (manifests/iptables-metrics-setup.sh --remove: nat chain KUBEPREPARE-TUNNEL and its jumps, the
     tcp/$PORT_OLD_METRICS rule of earlier versions, kubeprepare-tunnel-dnat.service). iptables-manager's
     chain TUNNEL-PORT is not ours: keadm reset does not delete it, it is gone at the next reboot
  2. EdgeMesh (manifests/edgemesh/, its ConfigMaps, the label on Service default/kubernetes)
  3. KubeEdge CloudCore: keadm reset cloud --force, then namespace kubeedge
  4. K3s: /usr/local/bin/k3s-uninstall.sh (deletes the cluster and its data!) unless --keep-k3s
  5. keadm, the K3s image archive we copied, /etc/kubeprepare (stream certificates, EdgeMesh PSK)
Steps whose target is already gone are skipped, so it can be re-run.

  --yes            required: confirms that the cluster on this node is to be removed
  --keep-k3s       keep K3s and its workloads; remove only the KubeEdge side
  --dry-run        print what would be done (no --yes needed)
  --log-file PATH  default /var/log/kubeprepare-uninstall.log
  --help           show this help
Exit status: 0 ok, 1 a step failed, 2 bad usage (or --yes missing).
USAGE
}

YES=0
KEEP_K3S=0
LOG_PATH=$(sys /var/log/kubeprepare-uninstall.log)
KUBECONFIG_PATH=$(sys /etc/rancher/k3s/k3s.yaml)
KEADM_BIN=$(sys /usr/local/bin/keadm)
K3S_UNINSTALL=$(sys /usr/local/bin/k3s-uninstall.sh)
BUNDLE_DIR=$SCRIPT_DIR

readonly KP_COMMON_OPTS="--dry-run --log-file"

# parse_args ARGS...: reads --yes and --keep-k3s; dies (exit 2) without --yes (unless --dry-run).
parse_args() {
  normalize_args "$@"
  set -- "${NORM_ARGS[@]+"${NORM_ARGS[@]}"}"
  while (($#)); do
    case $1 in
      --yes) YES=1; shift ;;
      --keep-k3s) KEEP_K3S=1; shift ;;
      *) common_arg "$@"; shift "$KP_SHIFT" ;;
    esac
  done
  if [[ $YES == 0 && $DRY_RUN == 0 ]]; then
    die_usage "refusing to uninstall without --yes (this removes the cluster; try --dry-run first)"
  fi
}


# sub_script PATH ARGS...: runs a bundle script with our --dry-run / --log-file.
sub_script() {
  local script=$1 extra=()
  shift
  [[ $DRY_RUN == 1 ]] && extra+=(--dry-run)
  [[ -n $LOG_FILE ]] && extra+=(--log-file "$LOG_FILE")
  "$BUNDLE_DIR/$script" "$@" "${extra[@]+"${extra[@]}"}"
}

# remove_cluster_objects: removes metrics-server, EdgeMesh and KubeEdge CloudCore from the cluster (when the API answers).
remove_cluster_objects() {
  # A dry run asks the API nothing: it shows every removal, as for objects that all exist.
  if [[ $DRY_RUN == 1 ]]; then
    dry_read "whether the K3s API answers; when it does, these objects are removed:"
  elif ! api_up; then
    log "the K3s API is not reachable: no Kubernetes objects to remove"
    return 0
  fi
  log "== metrics-server =="
  run kc delete -f "$BUNDLE_DIR/manifests/metrics-server.yaml" --ignore-not-found
  log "== EdgeMesh =="
  run kc delete -f "$BUNDLE_DIR/manifests/edgemesh" --ignore-not-found
  run kc -n kubeedge delete configmap edgemesh-agent-cfg edgemesh-agent-psk --ignore-not-found
  if [[ $DRY_RUN == 1 ]] || kc -n default get service kubernetes -o jsonpath='{.metadata.labels}' 2>/dev/null |
    grep -q 'service.edgemesh.kubeedge.io/service-proxy-name'; then
    run kc -n default label service kubernetes service.edgemesh.kubeedge.io/service-proxy-name-
  fi
  log "== KubeEdge CloudCore =="
  if [[ $DRY_RUN == 1 ]] || kc get namespace kubeedge >/dev/null 2>&1; then
    if [[ -x $KEADM_BIN ]]; then
      run "$KEADM_BIN" reset cloud --kube-config "$KUBECONFIG_PATH" --force
    fi
    run kc delete namespace kubeedge --ignore-not-found
  else
    log "namespace kubeedge is gone: KubeEdge already removed"
  fi
}

# main ARGS...: runs the uninstall steps, in the reverse order of install.sh.
main() {
  parse_args "$@"
  log_init "$LOG_PATH"
  [[ $DRY_RUN == 1 ]] && log "DRY RUN: nothing on this host will be changed"
  need_root
  need_cmd iptables rm

  remove_cluster_objects
  log "== KubePrepare's tunnel-port DNAT (nat KUBEPREPARE-TUNNEL, boot unit) =="
  sub_script manifests/iptables-metrics-setup.sh --remove

  if [[ $KEEP_K3S == 0 ]]; then
    log "== K3s =="
    if [[ -x $K3S_UNINSTALL ]]; then
      run "$K3S_UNINSTALL"
    else
      log "K3s is not installed ($K3S_UNINSTALL not found)"
    fi
  else
    log "--keep-k3s: K3s stays"
    local images
    images=$(sys /var/lib/rancher/k3s/agent/images/kubeprepare-cloud-images.tar)
    [[ -e $images ]] && run rm -f -- "$images"
  fi
  [[ -e $KEADM_BIN ]] && run rm -f -- "$KEADM_BIN"
  if [[ -d $KP_STATE_DIR ]]; then
    run rm -rf -- "$KP_STATE_DIR"
  fi
  log "uninstall finished"
}

main "$@"
