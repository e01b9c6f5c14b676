#!/usr/bin/env bash
# refresh-stream-cert.sh: keeps CloudCore's stream certificate valid for every node IP
# (bundle {{bundleName}}).
{{> shell-lib}}

usage() {
  cat <<USAGE
Usage: $SCRIPT_NAME [--add-edge-ip IP...] [--add-ip IP...] [--from-nodes] [--cert-dir DIR]
                    [--no-apply] [--timeout SECONDS] [--dry-run] [--log-file PATH] [--help]

kubectl logs/exec/top reach an edge node as https://<edge IP>:<tunnel port>, which iptables sends
to CloudCore's CloudStream; the API server checks that certificate, so its SANs must hold every
edge node IP (and the cloud addresses). This script:
  1. adds the given IPs to the list kept in /etc/kubeprepare/stream-ips (IPs given once stay)
  2. makes the certificate with gen-stream-cert.sh (signed by the K3s server CA when present)
  3. stores stream.crt, stream.key and streamCA.crt in Secret kubeedge/cloudcore (the keys the
     cloudcore Deployment mounts) with kubectl create --dry-run=client | kubectl apply
  4. restarts the cloudcore Deployment so it loads them
Steps 3-4 are skipped when the Secret already holds these files.

  --add-edge-ip IP   an edge node IP (repeatable)
  --add-ip IP        any other address (cloud advertise/node IP; repeatable)
  --from-nodes       also add the InternalIP/ExternalIP of every node known to the cluster
  --cert-dir DIR     where the files are kept (default /etc/kubeprepare/stream-certs)
  --no-apply         only make the files (no kubectl; for tests or a manual apply)
  --timeout SECONDS  wait for the restarted cloudcore (default 300)
  --dry-run          print what would be done
  --log-file PATH    also append the log to PATH
  --help             show this help
Exit status: 0 ok, 1 a step failed, 2 bad usage, 3 preflight failed, 5 timed out.
USAGE
}

IPS_STATE="$KP_STATE_DIR/stream-ips"
CERT_DIR="$KP_STATE_DIR/stream-certs"
K3S_TLS=$(sys /var/lib/rancher/k3s/server/tls)
KUBECONFIG_PATH=$(sys /etc/rancher/k3s/k3s.yaml)
NEW_IPS=()
FROM_NODES=0
APPLY=1
TIMEOUT=300
LOG_PATH=""

readonly KP_COMMON_OPTS="--timeout --dry-run --log-file"

parse_args() {
  normalize_args "$@"
  set -- "${NORM_ARGS[@]+"${NORM_ARGS[@]}"}"
  while (($#)); do
    case $1 in
      --add-edge-ip | --add-ip) need_value "$1" "$#" "${2-}"
        is_host_ipv4 "$2" || die_usage "$1: '$2' is not a usable IPv4 address"
        NEW_IPS+=("$2"); shift 2 ;;
      --from-nodes) FROM_NODES=1; shift ;;
      --cert-dir) need_value "$1" "$#" "${2-}"; CERT_DIR=$2; shift 2 ;;
      --no-apply) APPLY=0; shift ;;
      *) common_arg "$@"; shift "$KP_SHIFT" ;;
    esac
  done
  if ((FROM_NODES == 1 && APPLY == 0)); then
    die_usage "--from-nodes needs the cluster; it cannot go with --no-apply"
  fi
}

kc() {
  if command -v kubectl >/dev/null 2>&1; then
    kubectl --kubeconfig "$KUBECONFIG_PATH" "$@"
  else
    "$(sys /usr/local/bin/k3s)" kubectl --kubeconfig "$KUBECONFIG_PATH" "$@"
  fi
}

node_ips() {
  kc get nodes -o jsonpath='{range .items[*]}{range .status.addresses[*]}{.type}={.address}{"\n"}{end}{end}' |
    awk -F= '$1 == "InternalIP" || $1 == "ExternalIP" { print $2 }'
}

# secret_matches: does Secret kubeedge/cloudcore already hold our three files?
secret_matches() {
  local key file have
  for key in stream.crt stream.key streamCA.crt; do
    file=$CERT_DIR/$key
    have=$(kc -n kubeedge get secret cloudcore -o jsonpath="{.data.${key//./\\.}}" 2>/dev/null) || return 1
    [[ -n $have ]] || return 1
    [[ $(printf '%s' "$have" | base64 -d 2>/dev/null | sha256sum) == "$(sha256sum <"$file")" ]] || return 1
  done
}

main() {
  parse_args "$@"
  [[ -n $LOG_PATH ]] && log_init "$LOG_PATH"
  need_root
  need_cmd openssl awk sort sha256sum base64

  local ips=() ip extra=() ca_args=()
  if [[ -f $IPS_STATE ]]; then
    while IFS= read -r ip; do
      [[ -n $ip ]] && ips+=("$ip")
    done <"$IPS_STATE"
  fi
  ips+=("${NEW_IPS[@]+"${NEW_IPS[@]}"}")
  if ((FROM_NODES == 1)); then
    while IFS= read -r ip; do
      is_host_ipv4 "$ip" && ips+=("$ip")
    done < <(node_ips)
  fi
  ((${#ips[@]} > 0)) || die_usage "no IP known yet: give --add-ip/--add-edge-ip (install.sh records the cloud addresses)"
  mapfile -t ips < <(printf '%s\n' "${ips[@]}" | LC_ALL=C sort -u -t. -k1,1n -k2,2n -k3,3n -k4,4n)
  log "stream certificate SAN IPs: ${ips[*]}"

  if [[ -f $K3S_TLS/server-ca.crt && -f $K3S_TLS/server-ca.key ]]; then
    ca_args=(--ca-cert "$K3S_TLS/server-ca.crt" --ca-key "$K3S_TLS/server-ca.key")
    [[ -f $K3S_TLS/client-ca.crt ]] && ca_args+=(--client-ca "$K3S_TLS/client-ca.crt")
    log "signing with the K3s server CA ($K3S_TLS/server-ca.crt)"
  else
    ((APPLY == 0)) || [[ $DRY_RUN == 1 ]] || warn "K3s server CA not found in $K3S_TLS: using a stream CA of our own;" \
      "an API server that checks kubelet certificates will reject it"
  fi
  [[ $DRY_RUN == 1 ]] && extra+=(--dry-run)
  [[ -n $LOG_FILE ]] && extra+=(--log-file "$LOG_FILE")
  for ip in "${ips[@]}"; do extra+=(--ip "$ip"); done
  "$SCRIPT_DIR/gen-stream-cert.sh" --cert-dir "$CERT_DIR" --dns cloudcore.kubeedge --dns cloudcore.kubeedge.svc \
    "${ca_args[@]+"${ca_args[@]}"}" "${extra[@]}"
  printf '%s\n' "${ips[@]}" | write_file "$IPS_STATE" 0644

  if ((APPLY == 0)); then
    log "--no-apply: the files are in $CERT_DIR (stream.crt, stream.key, streamCA.crt)"
    return 0
  fi
  if [[ $DRY_RUN == 0 ]] && secret_matches; then
    log "Secret kubeedge/cloudcore already holds this certificate: no restart needed"
    return 0
  fi
  local create=(-n kubeedge create secret generic cloudcore
    "--from-file=stream.crt=$CERT_DIR/stream.crt"
    "--from-file=stream.key=$CERT_DIR/stream.key"
    "--from-file=streamCA.crt=$CERT_DIR/streamCA.crt"
    --dry-run=client -o yaml)
  if [[ $DRY_RUN == 1 ]]; then
    _kp_emit DRY-RUN "kubectl $(quote_cmd "${create[@]}") | kubectl apply -f -"
  else
    kc "${create[@]}" | run_stdin kc apply -f -
  fi
  run kc -n kubeedge rollout restart deployment cloudcore
  run kc -n kubeedge rollout status deployment/cloudcore "--timeout=${TIMEOUT}s"
  log "cloudcore restarted with the new stream certificate"
}

main "$@"
