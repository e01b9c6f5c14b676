#!/usr/bin/env bats
# gen-stream-cert.sh / refresh-stream-cert.sh with the real openssl.
load helpers/common

setup() {
  kp_setup cloud
  GEN=$BUNDLE/scripts/gen-stream-cert.sh
  REFRESH=$BUNDLE/scripts/refresh-stream-cert.sh
  CERTS=$BATS_TEST_TMPDIR/certs
}

sans_of() { openssl x509 -in "$1" -noout -ext subjectAltName | tail -n +2; }

@test "gen-stream-cert: SANs hold every given IP; the cert verifies against its CA" {
  run "$GEN" --cert-dir "$CERTS" --ip 10.0.0.1 --ip 10.0.0.2 --ip 192.168.5.7 --dns cloudcore.kubeedge
  status_is 0
  sans=$(sans_of "$CERTS/stream.crt")
  for ip in 10.0.0.1 10.0.0.2 192.168.5.7; do [[ $sans == *"IP Address:$ip"* ]]; done
  [[ $sans == *"DNS:cloudcore.kubeedge"* ]]
  openssl verify -CAfile "$CERTS/streamCA.crt" "$CERTS/stream.crt"
  [[ $(openssl x509 -in "$CERTS/stream.crt" -noout -pubkey) == "$(openssl pkey -in "$CERTS/stream.key" -pubout)" ]]
  openssl x509 -in "$CERTS/stream.crt" -noout -text | grep -q 'TLS Web Server Authentication'
  [[ $(stat -c %a "$CERTS/stream.key") == 600 && $(stat -c %a "$CERTS") == 700 ]]
}

@test "gen-stream-cert: a second run keeps the cert; the CA is reused when IPs change" {
  "$GEN" --cert-dir "$CERTS" --ip 10.0.0.1 --ip 10.0.0.2
  crt=$(sha256sum <"$CERTS/stream.crt")
  ca=$(sha256sum <"$CERTS/streamCA.crt")
  run "$GEN" --cert-dir "$CERTS" --ip 10.0.0.2 --ip 10.0.0.1
  status_is 0
  output_has "unchanged"
  [[ $(sha256sum <"$CERTS/stream.crt") == "$crt" ]]
  run "$GEN" --cert-dir "$CERTS" --ip 10.0.0.1 --ip 10.0.0.2 --ip 10.0.0.3
  status_is 0
  output_has "reusing the stream CA"
  [[ $(sha256sum <"$CERTS/streamCA.crt") == "$ca" ]]
  [[ $(sha256sum <"$CERTS/stream.crt") != "$crt" ]]
  [[ $(sans_of "$CERTS/stream.crt") == *"IP Address:10.0.0.3"* ]]
}

@test "gen-stream-cert: signs with a given CA and writes the client CA as streamCA.crt; no .srl next to the CA" {
  ca=$BATS_TEST_TMPDIR/ca
  mkdir -p "$ca"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$ca/server-ca.key" -out "$ca/server-ca.crt" -days 30 -subj /CN=server-ca 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$ca/client-ca.key" -out "$ca/client-ca.crt" -days 30 -subj /CN=client-ca 2>/dev/null
  run "$GEN" --cert-dir "$CERTS" --ip 10.0.0.1 --ca-cert "$ca/server-ca.crt" --ca-key "$ca/server-ca.key" --client-ca "$ca/client-ca.crt"
  status_is 0
  openssl verify -CAfile "$ca/server-ca.crt" "$CERTS/stream.crt"
  cmp "$ca/client-ca.crt" "$CERTS/streamCA.crt"
  [[ ! -e $CERTS/streamCA.key ]]
  [[ -z $(find "$ca" -name '*.srl') ]]
}

@test "gen-stream-cert: bad arguments" {
  run "$GEN" --ip 10.0.0.1
  status_is 2
  output_has "--cert-dir is required"
  run "$GEN" --cert-dir "$CERTS"
  status_is 2
  output_has "at least one --ip"
  run "$GEN" --cert-dir "$CERTS" --ip 10.0.0.256
  status_is 2
  run "$GEN" --cert-dir "$CERTS" --ip 10.0.0.1 --ca-cert /nonexistent
  status_is 2
  output_has "go together"
  run "$GEN" --cert-dir "$CERTS" --ip 10.0.0.1 --ca-cert /nonexistent --ca-key /nonexistent
  status_is 3
  run "$GEN" --cert-dir "$CERTS" --ip 10.0.0.1 --days x
  status_is 2
  [[ ! -e $CERTS ]]
}

@test "refresh-stream-cert --no-apply: keeps old IPs, adds new ones, no kubectl" {
  run "$REFRESH" --add-ip 192.168.10.10 --add-edge-ip 192.168.10.21 --no-apply
  status_is 0
  crt=$KP_SYSROOT/etc/kubeprepare/stream-certs/stream.crt
  [[ $(sans_of "$crt") == *"IP Address:192.168.10.21"* ]]
  run "$REFRESH" --add-edge-ip 192.168.10.22 --no-apply
  status_is 0
  sans=$(sans_of "$crt")
  for ip in 192.168.10.10 192.168.10.21 192.168.10.22; do [[ $sans == *"IP Address:$ip"* ]]; done
  [[ $(cat "$KP_SYSROOT/etc/kubeprepare/stream-ips") == $'192.168.10.10\n192.168.10.21\n192.168.10.22' ]]
  not_called "kubectl"
}

@test "refresh-stream-cert: stores the Secret keys the Deployment mounts and restarts cloudcore, once" {
  mkdir -p "$KP_SYSROOT/etc/rancher/k3s"
  touch "$KP_SYSROOT/etc/rancher/k3s/k3s.yaml"
  run "$REFRESH" --add-ip 192.168.10.10 --add-edge-ip 192.168.10.21
  status_is 0
  called "-n kubeedge create secret generic cloudcore --from-file=stream.crt="
  called "--from-file=stream.key="
  called "--from-file=streamCA.crt="
  called "apply -f -"
  called "-n kubeedge rollout restart deployment cloudcore"
  cmp "$KP_STUB_STATE/secret-cloudcore/stream.crt" "$KP_SYSROOT/etc/kubeprepare/stream-certs/stream.crt"
  reset_calls
  run "$REFRESH"
  status_is 0
  output_has "already holds this certificate"
  not_called "create secret"
  not_called "rollout restart"
  reset_calls
  run "$REFRESH" --add-edge-ip 192.168.10.22
  status_is 0
  called "rollout restart deployment cloudcore"
  [[ $(sans_of "$KP_STUB_STATE/secret-cloudcore/stream.crt") == *"192.168.10.22"* ]]
}

@test "refresh-stream-cert: --from-nodes adds the cluster's node IPs" {
  mkdir -p "$KP_SYSROOT/etc/rancher/k3s"
  touch "$KP_SYSROOT/etc/rancher/k3s/k3s.yaml"
  KP_FAKE_NODE_IPS="192.168.10.10 192.168.10.31" run "$REFRESH" --from-nodes
  status_is 0
  [[ $(sans_of "$KP_STUB_STATE/secret-cloudcore/stream.crt") == *"IP Address:192.168.10.31"* ]]
}

@test "refresh-stream-cert: bad arguments; nothing known yet" {
  run "$REFRESH" --add-edge-ip 1.2.3.400
  status_is 2
  run "$REFRESH" --add-edge-ip
  status_is 2
  output_has "needs a value"
  run "$REFRESH" --no-apply
  status_is 2
  output_has "no IP known yet"
  run "$REFRESH" --from-nodes --no-apply
  status_is 2
  run "$REFRESH" --dry-run --add-ip 10.0.0.1
  status_is 0
  refute_mutations
  [[ ! -e $KP_SYSROOT/etc/kubeprepare ]]
}
