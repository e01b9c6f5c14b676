#!/usr/bin/env bash
# refresh-stream-cert.sh: keeps CloudCore's stream certificate valid for every node IP
# (bundle {{bundleName}}).
{{> shell-lib}}
{{> stream-cert-check}}

readonly PORT_CLOUDHUB={{ports.cloudHubWebsocket}} PORT_TUNNEL={{ports.tunnel}} PORT_STREAM={{ports.cloudStream}}

# usage: prints the help text.
usage() {
  cat <<USAGE
Usage: $SCRIPT_NAME [--add-edge-ip IP...] [--add-ip IP...] [--from-nodes] [--cert-dir DIR]
                    [--no-apply | --check] [--stream-endpoint IP:PORT]
                    [--timeout SECONDS] [--dry-run] [--log-file PATH] [--help]

kubectl logs/exec/top reach an edge node as https://<edge IP>:<tunnel port>, which iptables sends
to CloudCore's CloudStream; the API server checks that certificate, so its SANs must hold every
edge node IP (and the cloud addresses). This script:
  1. adds the given IPs to the list kept in /etc/kubeprepare/stream-ips (IPs given once stay)
  2. makes the certificate with gen-stream-cert.sh (signed by the K3s server CA when present)
  3. stores stream.crt, stream.key and streamCA.crt in Secret kubeedge/cloudcore (the keys the
     cloudcore Deployment mounts) with kubectl create --dry-run=client | kubectl apply
  4. restarts the cloudcore Deployment so it loads them (CloudCore reads them only when it starts).
     Before any restart the Deployment's strategy is made Recreate (kubectl patch, once): its pod uses
     the host network with host ports $PORT_CLOUDHUB-$PORT_TUNNEL, so the extra pod of a RollingUpdate can never be
     scheduled on a one-node cloud and the restart would never finish
  5. reads the certificate CloudCore serves on IP:$PORT_STREAM (openssl s_client) and waits until it holds
     every IP and verifies against the K3s server CA (the CA the API server checks kubelets with)
Steps 3-4 are skipped when the Secret already holds these files AND CloudCore already serves them.

  --add-edge-ip IP   an edge node IP (repeatable)
  --add-ip IP        any other address (cloud advertise/node IP; repeatable)
  --from-nodes       also add the InternalIP/ExternalIP of every node known to the cluster
  --cert-dir DIR     where the files are kept (default /etc/kubeprepare/stream-certs)
  --no-apply         only make the files (no kubectl; for tests or a manual apply)
  --check            only check the certificate CloudCore serves (step 5, no wait); change nothing
  --stream-endpoint IP:PORT
                     where this host reaches CloudCore's stream port (default: the node IP recorded
                     by install.sh, port $PORT_STREAM)
  --timeout SECONDS  wait for the restarted cloudcore and for it to serve the certificate (default 300)
  --dry-run          print what would be done
  --log-file PATH    also append the log to PATH
  --help             show this help
Exit status: 0 ok, 1 a step failed, 2 bad usage, 3 preflight failed, 4 (--check) CloudCore serves
a wrong certificate, 5 timed out (the rollout, or CloudCore serving the new certificate).
USAGE
}

IPS_STATE="$KP_STATE_DIR/stream-ips"
CERT_DIR="$KP_STATE_DIR/stream-certs"
K3S_TLS=$(sys /var/lib/rancher/k3s/server/tls)
KUBECONFIG_PATH=$(sys /etc/rancher/k3s/k3s.yaml)
NEW_IPS=()
FROM_NODES=0
APPLY=1
CHECK_ONLY=0
TIMEOUT=300
LOG_PATH=""

readonly KP_COMMON_OPTS="--timeout --dry-run --log-file"

# parse_args ARGS...: reads the options into NEW_IPS, FROM_NODES, CERT_DIR, APPLY, CHECK_ONLY, STREAM_ENDPOINT; dies (exit 2) on bad usage.
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
      --check) CHECK_ONLY=1; shift ;;
      --stream-endpoint) need_value "$1" "$#" "${2-}"
        is_endpoint "$2" || die_usage "--stream-endpoint: '$2' is not IPv4:PORT"
        STREAM_ENDPOINT=$2; shift 2 ;;
      *) common_arg "$@"; shift "$KP_SHIFT" ;;
    esac
  done
  if ((FROM_NODES == 1 && APPLY == 0)); then
    die_usage "--from-nodes needs the cluster; it cannot go with --no-apply"
  fi
  if ((CHECK_ONLY == 1 && (APPLY == 0 || ${#NEW_IPS[@]} > 0 || FROM_NODES == 1))); then
    die_usage "--check changes nothing: it cannot go with --no-apply, --add-ip/--add-edge-ip or --from-nodes"
  fi
}


# node_ips: prints the InternalIP and ExternalIP of every node, one a line.
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

# stream_ca: prints the path of the CA the served certificate must verify against:
# The CA the served certificate must verify against: the K3s server CA (what kube-apiserver's
# --kubelet-certificate-authority is on K3s) when present, else the stream CA this script signs with.
stream_ca() {
  if [[ -f $(stream_kubelet_ca) ]]; then stream_kubelet_ca; else printf '%s' "$CERT_DIR/streamCA.crt"; fi
}
SAN_IPS=()
# served_ok_now: does CloudCore serve a certificate for SAN_IPS that verifies against stream_ca?
served_ok_now() { stream_cert_served "$(stream_endpoint)" "$(stream_ca)" "${SAN_IPS[@]}"; }

# ensure_recreate: the cloudcore Deployment of the chart has strategy {} (RollingUpdate, maxSurge 25% = 1
# pod, maxUnavailable 0) and host ports 10000-10004: on one eligible node the surge pod stays Pending
# ("didn't have free ports") and a restart never finishes. Recreate stops the old pod first.
# A JSON merge patch must null rollingUpdate: the API server refuses rollingUpdate with type Recreate.
ensure_recreate() {
  local type patch='{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}'
  if [[ $DRY_RUN == 1 ]]; then
    _kp_emit DRY-RUN "read the strategy of deployment kubeedge/cloudcore; unless it is Recreate: $(quote_cmd kc -n kubeedge patch deployment cloudcore --type merge -p "$patch")"
    return 0
  fi
  type=$(kc -n kubeedge get deployment cloudcore -o jsonpath='{.spec.strategy.type}') ||
    die "cannot read deployment kubeedge/cloudcore (is CloudCore installed? install.sh does it)"
  if [[ $type == Recreate ]]; then
    log "cloudcore Deployment strategy: Recreate (restarts work on one node)"
    return 0
  fi
  log "cloudcore Deployment strategy is ${type:-RollingUpdate}: its surge pod could never be scheduled on a one-node cloud" \
    "(host ports $PORT_CLOUDHUB-$PORT_TUNNEL); patching it to Recreate"
  run kc -n kubeedge patch deployment cloudcore --type merge -p "$patch"
  type=$(kc -n kubeedge get deployment cloudcore -o jsonpath='{.spec.strategy.type}') || type=""
  [[ $type == Recreate ]] || die "deployment kubeedge/cloudcore still has strategy '${type}' after the patch"
  log "cloudcore Deployment strategy: Recreate"
}

# check_served: (--check) dies (exit 4) unless CloudCore serves a certificate for the recorded IPs.
check_served() {
  local ips=() ip
  [[ -f $IPS_STATE ]] || die_usage "no IP known yet ($IPS_STATE): nothing to check against"
  while IFS= read -r ip; do [[ -n $ip ]] && ips+=("$ip"); done <"$IPS_STATE"
  if [[ $DRY_RUN == 1 ]]; then
    _kp_emit DRY-RUN "openssl s_client -connect $(stream_endpoint): check SANs ${ips[*]} and issuer against $(stream_ca)"
    return 0
  fi
  if stream_cert_served "$(stream_endpoint)" "$(stream_ca)" "${ips[@]}"; then
    log "OK: $STREAM_CERT_RESULT"
    return 0
  fi
  die_verify "$STREAM_CERT_RESULT. Fix: $SCRIPT_NAME (restarts CloudCore when needed)"
}

# main ARGS...: makes the certificate for the known IPs, stores it in Secret kubeedge/cloudcore, restarts CloudCore when it serves another.
main() {
  parse_args "$@"
  [[ -n $LOG_PATH ]] && log_init "$LOG_PATH"
  need_root
  need_cmd openssl awk sort sha256sum base64
  if [[ -z $(stream_endpoint) ]]; then
    if [[ $DRY_RUN == 1 ]]; then
      STREAM_ENDPOINT="<node IP>:$PORT_STREAM"
    elif ((APPLY == 1)); then
      die_usage "the cloud node IP is not known ($KP_STATE_DIR/cloud.env has no NODE_IP): give --stream-endpoint IP:$PORT_STREAM"
    fi
  fi
  if ((CHECK_ONLY == 1)); then
    check_served
    return 0
  fi

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
  SAN_IPS=("${ips[@]}")
  ensure_recreate
  local secret_ok=0 served_ok=0
  if [[ $DRY_RUN == 0 ]]; then
    secret_matches && secret_ok=1
    if served_ok_now; then
      served_ok=1
      log "CloudCore serves the stream certificate: $STREAM_CERT_RESULT"
    else
      log "CloudCore does not serve the wanted stream certificate yet: $STREAM_CERT_RESULT"
    fi
  fi
  if ((secret_ok == 1 && served_ok == 1)); then
    log "Secret kubeedge/cloudcore already holds this certificate and CloudCore serves it: no restart needed"
    return 0
  fi
  if ((secret_ok == 1)); then
    log "Secret kubeedge/cloudcore already holds this certificate, but the running CloudCore does not serve it: restarting"
  else
    local create=(-n kubeedge create secret generic cloudcore
      "--from-file=stream.crt=$CERT_DIR/stream.crt"
      "--from-file=stream.key=$CERT_DIR/stream.key"
      "--from-file=streamCA.crt=$CERT_DIR/streamCA.crt"
      --dry-run=client -o yaml)
    if [[ $DRY_RUN == 1 ]]; then
      _kp_emit DRY-RUN "kubectl $(quote_cmd "${create[@]}") | kubectl apply -f - (unless the Secret already holds these files)"
    else
      kc "${create[@]}" | run_stdin kc apply -f -
    fi
  fi
  run kc -n kubeedge rollout restart deployment cloudcore
  if ! run kc -n kubeedge rollout status deployment/cloudcore "--timeout=${TIMEOUT}s"; then
    die_timeout "the restarted cloudcore Deployment did not finish its rollout within ${TIMEOUT}s (kubectl rollout status above;" \
      "kubectl -n kubeedge get pods -l kubeedge=cloudcore shows the pod that is not Running)"
  fi
  stream_cert_wait "$TIMEOUT" "$(stream_endpoint)" "$(stream_ca)" "${SAN_IPS[@]}"
  log "cloudcore restarted with the new stream certificate"
}

main "$@"
