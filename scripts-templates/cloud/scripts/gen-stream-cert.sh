#!/usr/bin/env bash
# gen-stream-cert.sh: makes CloudCore's stream certificate with openssl (bundle {{bundleName}}).
{{> shell-lib}}

# usage: prints the help text.
usage() {
  cat <<USAGE
Usage: $SCRIPT_NAME --cert-dir DIR --ip IP [--ip IP...] [--dns NAME...]
                    [--ca-cert FILE --ca-key FILE] [--client-ca FILE] [--days N]
                    [--dry-run] [--log-file PATH] [--help]

Writes into DIR:
  stream.crt, stream.key  the CloudStream serving certificate (RSA 2048, SHA-256) whose
                          subjectAltName holds every --ip (IP:...) and --dns (DNS:...)
  streamCA.crt            the CA CloudStream trusts for client certificates
No kubectl is needed: refresh-stream-cert.sh stores the files in the cloudcore Secret.

Which CA signs the certificate:
  --ca-cert/--ca-key  sign with this CA. On K3s, refresh-stream-cert.sh passes the K3s server CA
                      (/var/lib/rancher/k3s/server/tls/server-ca.*), because the K3s API server
                      checks kubelet (= CloudStream) serving certificates against it
                      (--kubelet-certificate-authority); KubeEdge's certgen.sh likewise signs with
                      the cluster CA.
  otherwise           DIR/streamCA.crt + DIR/streamCA.key are reused when present, else a new CA
                      (CN kubeprepare-stream-ca, 10 years) is created there: standalone/test use.
  --client-ca FILE    what to write as streamCA.crt (default: the signing CA). On K3s this is
                      client-ca.crt, the CA of the API server's kubelet client certificate.

Idempotent: an existing stream.crt that is signed by the CA, has exactly the requested SANs, matches
stream.key and is valid for 30 more days is kept as is (nothing is written).

  --days N   validity of the certificate (default 3650)
Exit status: 0 ok, 1 openssl failed, 2 bad usage, 3 preflight failed (missing openssl or CA files).
USAGE
}

CERT_DIR=""
IPS=()
DNS_NAMES=()
CA_CERT=""
CA_KEY=""
CLIENT_CA=""
DAYS=3650
LOG_PATH=""

readonly KP_COMMON_OPTS="--dry-run --log-file"

# parse_args ARGS...: reads the options into CERT_DIR, IPS, DNS_NAMES, the CA files and DAYS; dies (exit 2) on bad usage.
parse_args() {
  normalize_args "$@"
  set -- "${NORM_ARGS[@]+"${NORM_ARGS[@]}"}"
  while (($#)); do
    case $1 in
      --cert-dir) need_value "$1" "$#" "${2-}"; CERT_DIR=$2; shift 2 ;;
      --ip) need_value "$1" "$#" "${2-}"
        is_ipv4 "$2" || die_usage "--ip: '$2' is not an IPv4 address"
        IPS+=("$2"); shift 2 ;;
      --dns) need_value "$1" "$#" "${2-}"
        [[ $2 =~ ^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$ ]] || die_usage "--dns: '$2' is not a DNS name"
        DNS_NAMES+=("$2"); shift 2 ;;
      --ca-cert) need_value "$1" "$#" "${2-}"; CA_CERT=$2; shift 2 ;;
      --ca-key) need_value "$1" "$#" "${2-}"; CA_KEY=$2; shift 2 ;;
      --client-ca) need_value "$1" "$#" "${2-}"; CLIENT_CA=$2; shift 2 ;;
      --days) need_value "$1" "$#" "${2-}"; DAYS=$2; shift 2 ;;
      *) common_arg "$@"; shift "$KP_SHIFT" ;;
    esac
  done
  [[ -n $CERT_DIR ]] || die_usage "--cert-dir is required"
  ((${#IPS[@]} > 0)) || die_usage "give at least one --ip"
  [[ $DAYS =~ ^[1-9][0-9]*$ ]] || die_usage "--days: '$DAYS' is not a number of days"
  if [[ -n $CA_CERT || -n $CA_KEY ]]; then
    [[ -n $CA_CERT && -n $CA_KEY ]] || die_usage "--ca-cert and --ca-key go together"
  fi
}

# cert_sans CRT: prints the SANs of CRT, one per line, as IP:a.b.c.d / DNS:name, sorted.
cert_sans() {
  openssl x509 -in "$1" -noout -text 2>/dev/null |
    awk '/X509v3 Subject Alternative Name/ { getline; print; exit }' |
    tr ',' '\n' | sed -e 's/^[[:space:]]*//' -e 's/^IP Address:/IP:/' -e 's/[[:space:]]*$//' |
    grep -v '^$' | LC_ALL=C sort -u
}
# wanted_sans: prints the SANs asked for (IPS, DNS_NAMES) as cert_sans does.
wanted_sans() {
  local x
  {
    for x in "${IPS[@]}"; do printf 'IP:%s\n' "$x"; done
    for x in "${DNS_NAMES[@]+"${DNS_NAMES[@]}"}"; do printf 'DNS:%s\n' "$x"; done
  } | LC_ALL=C sort -u
}
# pubkey_of_cert CRT: prints the public key of CRT.
pubkey_of_cert() { openssl x509 -in "$1" -noout -pubkey 2>/dev/null; }
# pubkey_of_key KEY: prints the public key of the private key KEY.
pubkey_of_key() { openssl pkey -in "$1" -pubout 2>/dev/null; }

# cert_is_current CA: is stream.crt signed by CA, with the wanted SANs, matching stream.key, valid 30 days more?
cert_is_current() {
  local crt=$CERT_DIR/stream.crt key=$CERT_DIR/stream.key ca=$1
  [[ -f $crt && -f $key ]] || return 1
  openssl verify -CAfile "$ca" "$crt" >/dev/null 2>&1 || { log "existing stream.crt is not signed by $ca"; return 1; }
  [[ $(cert_sans "$crt") == "$(wanted_sans)" ]] || { log "existing stream.crt has other SANs: $(cert_sans "$crt" | tr '\n' ' ')"; return 1; }
  [[ $(pubkey_of_cert "$crt") == "$(pubkey_of_key "$key")" ]] || { log "existing stream.key does not match stream.crt"; return 1; }
  openssl x509 -in "$crt" -noout -checkend $((30 * 24 * 3600)) >/dev/null 2>&1 || { log "existing stream.crt expires within 30 days"; return 1; }
}

# make_ca: makes a new stream CA (streamCA.key, streamCA.crt) in CERT_DIR.
make_ca() {
  local cnf
  cnf=$(mktemp "${TMPDIR:-/tmp}/kp-ca.XXXXXX")
  cat >"$cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = kubeprepare-stream-ca
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF
  (umask 077 && openssl genrsa -out "$CERT_DIR/streamCA.key" 2048 2>/dev/null)
  openssl req -x509 -new -key "$CERT_DIR/streamCA.key" -sha256 -days 3650 -config "$cnf" -out "$CERT_DIR/streamCA.crt"
  rm -f -- "$cnf"
  log "created a new stream CA: $CERT_DIR/streamCA.crt"
}

# make_cert CA_CERT CA_KEY: makes stream.key and stream.crt (the wanted SANs, DAYS) signed by the CA, atomically.
make_cert() {
  local ca_cert=$1 ca_key=$2 cnf key csr crt san x
  san=""
  for x in "${IPS[@]}"; do san+="${san:+,}IP:$x"; done
  for x in "${DNS_NAMES[@]+"${DNS_NAMES[@]}"}"; do san+="${san:+,}DNS:$x"; done
  cnf=$(mktemp "${TMPDIR:-/tmp}/kp-stream.XXXXXX")
  key=$(mktemp "$CERT_DIR/.stream.key.XXXXXX")
  csr=$(mktemp "${TMPDIR:-/tmp}/kp-stream-csr.XXXXXX")
  crt=$(mktemp "$CERT_DIR/.stream.crt.XXXXXX")
  cat >"$cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = kubeedge-cloudstream
O = KubePrepare
[ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = $san
CNF
  openssl genrsa -out "$key" 2048 2>/dev/null
  openssl req -new -key "$key" -config "$cnf" -out "$csr"
  # an explicit random serial: no .srl file is written next to the CA (it may be K3s's own)
  openssl x509 -req -in "$csr" -CA "$ca_cert" -CAkey "$ca_key" -set_serial "0x$(openssl rand -hex 16)" \
    -sha256 -days "$DAYS" -extfile "$cnf" -extensions ext -out "$crt" 2>/dev/null
  chmod 0600 -- "$key"
  chmod 0644 -- "$crt"
  mv -f -- "$key" "$CERT_DIR/stream.key"
  mv -f -- "$crt" "$CERT_DIR/stream.crt"
  rm -f -- "$cnf" "$csr"
  log "wrote $CERT_DIR/stream.crt (SANs: $san; ${DAYS} days)"
}

# main ARGS...: makes the CA and certificate unless current, installs streamCA.crt; verifies the result.
main() {
  parse_args "$@"
  [[ -n $LOG_PATH ]] && log_init "$LOG_PATH"
  need_cmd openssl awk sed sort mktemp
  local ca_cert ca_key client_ca
  if [[ -n $CA_CERT ]]; then
    [[ -f $CA_CERT && -f $CA_KEY ]] || die_preflight "CA files not found: $CA_CERT / $CA_KEY"
    ca_cert=$CA_CERT
    ca_key=$CA_KEY
  else
    ca_cert=$CERT_DIR/streamCA.crt
    ca_key=$CERT_DIR/streamCA.key
  fi
  client_ca=${CLIENT_CA:-$ca_cert}
  if [[ -n $CLIENT_CA && ! -f $CLIENT_CA ]]; then
    die_preflight "--client-ca file not found: $CLIENT_CA"
  fi

  if [[ $DRY_RUN == 1 ]]; then
    _kp_emit DRY-RUN "openssl: stream.crt/stream.key in $CERT_DIR for $(wanted_sans | tr '\n' ' ')signed by $ca_cert"
    return 0
  fi
  mkdir -p -- "$CERT_DIR"
  chmod 0700 -- "$CERT_DIR"
  if [[ -z $CA_CERT ]]; then
    if [[ -f $ca_cert && -f $ca_key ]]; then
      log "reusing the stream CA in $CERT_DIR"
    else
      make_ca
    fi
  fi
  if cert_is_current "$ca_cert"; then
    log "stream.crt is current (SANs $(wanted_sans | tr '\n' ' ')): unchanged"
  else
    make_cert "$ca_cert" "$ca_key"
  fi
  if [[ ! -f $CERT_DIR/streamCA.crt ]] || ! cmp -s -- "$client_ca" "$CERT_DIR/streamCA.crt"; then
    install -m 0644 -- "$client_ca" "$CERT_DIR/streamCA.crt"
    log "wrote $CERT_DIR/streamCA.crt (from $client_ca)"
  fi
  openssl verify -CAfile "$ca_cert" "$CERT_DIR/stream.crt" >/dev/null || die "the new stream.crt does not verify against $ca_cert"
}

main "$@"
