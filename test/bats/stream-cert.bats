#!/usr/bin/env bats
# gen-stream-cert.sh / refresh-stream-cert.sh with the real openssl.
load helpers/common
load helpers/fake-cloudcore

setup() {
  kp_setup cloud
  GEN=$BUNDLE/scripts/gen-stream-cert.sh
  REFRESH=$BUNDLE/scripts/refresh-stream-cert.sh
  CERTS=$BATS_TEST_TMPDIR/certs
}
teardown() {
  fake_cloudcore_stop
  if [[ -n ${TLS_PID-} ]]; then kill "$TLS_PID" 2>/dev/null || true; fi
}

# cluster_up [STRATEGY]: K3s (kubeconfig, server CA) and a deployed CloudCore as keadm init leaves them
# (STRATEGY: what the Deployment has; default none given = the chart's {} -> RollingUpdate), and the
# fake CloudCore serving the chart's certificate on FAKE_CC_ENDPOINT.
cluster_up() {
  local tls=$KP_SYSROOT/var/lib/rancher/k3s/server/tls
  mkdir -p "$KP_SYSROOT/etc/rancher/k3s" "$tls"
  touch "$KP_SYSROOT/etc/rancher/k3s/k3s.yaml"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tls/server-ca.key" -out "$tls/server-ca.crt" -days 30 -subj /CN=k3s-server-ca 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tls/client-ca.key" -out "$tls/client-ca.crt" -days 30 -subj /CN=k3s-client-ca 2>/dev/null
  printf 'docker.io/kubeedge/cloudcore:%s' "$(kp_ctx versions.kubeedge)" >"$KP_STUB_STATE/kubeedge"
  [[ -z ${1-} ]] || printf '%s' "$1" >"$KP_STUB_STATE/cloudcore-strategy"
  fake_cloudcore_start
}
served_sans() { fake_cloudcore_served | openssl x509 -noout -ext subjectAltName | tail -n +2; }
served_issuer() { fake_cloudcore_served | openssl x509 -noout -issuer; }

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
  cluster_up Recreate
  run "$REFRESH" --add-ip 192.168.10.10 --add-edge-ip 192.168.10.21 --stream-endpoint "$FAKE_CC_ENDPOINT" --timeout 10
  status_is 0
  called "-n kubeedge create secret generic cloudcore --from-file=stream.crt="
  called "--from-file=stream.key="
  called "--from-file=streamCA.crt="
  called "apply -f -"
  called "-n kubeedge rollout restart deployment cloudcore"
  cmp "$KP_STUB_STATE/secret-cloudcore/stream.crt" "$KP_SYSROOT/etc/kubeprepare/stream-certs/stream.crt"
  # what CloudCore serves after the restart: the new certificate, signed by the K3s server CA
  fake_cloudcore_serves_new 192.168.10.21
  reset_calls
  run "$REFRESH" --stream-endpoint "$FAKE_CC_ENDPOINT" --timeout 10
  status_is 0
  output_has "already holds this certificate and CloudCore serves it"
  not_called "create secret"
  not_called "rollout restart"
  not_called "patch"
  reset_calls
  run "$REFRESH" --add-edge-ip 192.168.10.22 --stream-endpoint "$FAKE_CC_ENDPOINT" --timeout 10
  status_is 0
  called "rollout restart deployment cloudcore"
  [[ $(sans_of "$KP_STUB_STATE/secret-cloudcore/stream.crt") == *"192.168.10.22"* ]]
  [[ $(served_sans) == *"IP Address:192.168.10.22"* ]]
}

@test "refresh-stream-cert: --from-nodes adds the cluster's node IPs" {
  cluster_up Recreate
  KP_FAKE_NODE_IPS="192.168.10.10 192.168.10.31" run "$REFRESH" --from-nodes --stream-endpoint "$FAKE_CC_ENDPOINT" --timeout 10
  status_is 0
  [[ $(sans_of "$KP_STUB_STATE/secret-cloudcore/stream.crt") == *"IP Address:192.168.10.31"* ]]
  [[ $(served_sans) == *"IP Address:192.168.10.31"* ]]
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
  run "$REFRESH" --check --add-ip 10.0.0.1
  status_is 2
  run "$REFRESH" --stream-endpoint localhost:10003
  status_is 2
  run "$REFRESH" --dry-run --add-ip 10.0.0.1
  status_is 0
  refute_mutations
  # the dry run shows the strategy patch and the served-certificate wait, and opens no connection
  output_has "patch deployment cloudcore --type merge -p"
  output_has "wait up to 300s for CloudCore to serve the stream certificate"
  not_called "kubectl"
  [[ ! -e $KP_SYSROOT/etc/kubeprepare ]]
}

# ---- the certificate CloudCore serves: a real openssl s_server on loopback ----
# serve_cert DIR: s_server with DIR/stream.crt + DIR/stream.key on a free port (ENDPOINT).
serve_cert() {
  local port
  port=$(kp_free_port)
  kp_serve_tls "$1/stream.crt" "$1/stream.key" "$port"
  ENDPOINT=127.0.0.1:$port
  kp_wait_tls "$port"
}
known_ips() { printf '192.168.10.10\n192.168.10.21\n' >"$KP_SYSROOT/etc/kubeprepare/stream-ips"; }

@test "served certificate: the right one (SAN IPs, signed by the K3s server CA) passes" {
  cluster_up
  fake_cloudcore_stop
  run "$REFRESH" --add-ip 192.168.10.10 --add-edge-ip 192.168.10.21 --no-apply
  status_is 0
  serve_cert "$KP_SYSROOT/etc/kubeprepare/stream-certs"
  run "$REFRESH" --check --stream-endpoint "$ENDPOINT"
  status_is 0
  output_has "serves a certificate for 192.168.10.10 192.168.10.21 issued by 'CN = k3s-server-ca'"
  not_called "kubectl"
}

@test "served certificate: the chart's (cloudcore-ca, DNS names only) fails, naming the missing IPs" {
  cluster_up
  fake_cloudcore_stop
  mkdir -p "$KP_SYSROOT/etc/kubeprepare"
  known_ips
  kp_helm_like_cert "$BATS_TEST_TMPDIR/helm"
  mkdir -p "$BATS_TEST_TMPDIR/stale"
  cp "$BATS_TEST_TMPDIR/helm/helm.crt" "$BATS_TEST_TMPDIR/stale/stream.crt"
  cp "$BATS_TEST_TMPDIR/helm/helm.key" "$BATS_TEST_TMPDIR/stale/stream.key"
  serve_cert "$BATS_TEST_TMPDIR/stale"
  run "$REFRESH" --check --stream-endpoint "$ENDPOINT"
  status_is 4
  output_has "lacks the SAN IP(s) 192.168.10.10 192.168.10.21"
  output_has "issued by 'CN = cloudcore-ca'"
}

@test "served certificate: right SANs from another CA fails, naming the issuer" {
  cluster_up
  fake_cloudcore_stop
  other=$BATS_TEST_TMPDIR/other-ca
  mkdir -p "$other"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$other/ca.key" -out "$other/ca.crt" -days 30 -subj /CN=some-other-ca 2>/dev/null
  "$GEN" --cert-dir "$CERTS" --ip 192.168.10.10 --ip 192.168.10.21 --ca-cert "$other/ca.crt" --ca-key "$other/ca.key"
  mkdir -p "$KP_SYSROOT/etc/kubeprepare"
  known_ips
  serve_cert "$CERTS"
  run "$REFRESH" --check --stream-endpoint "$ENDPOINT"
  status_is 4
  output_has "issued by 'CN = some-other-ca', which does not verify against $KP_SYSROOT/var/lib/rancher/k3s/server/tls/server-ca.crt"
  [[ $output != *"lacks the SAN"* ]]
}

@test "served certificate: nothing listening is reported as such" {
  mkdir -p "$KP_SYSROOT/etc/kubeprepare" "$KP_SYSROOT/var/lib/rancher/k3s/server/tls"
  known_ips
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$BATS_TEST_TMPDIR/ca.key" \
    -out "$KP_SYSROOT/var/lib/rancher/k3s/server/tls/server-ca.crt" -days 30 -subj /CN=k3s-server-ca 2>/dev/null
  run "$REFRESH" --check --stream-endpoint "127.0.0.1:$(kp_free_port)"
  status_is 4
  output_has "no TLS certificate served on 127.0.0.1:"
}

# ---- CloudCore restarts on a one-node cloud (host ports 10000-10004, chart strategy {}) ----
@test "one node, RollingUpdate: the old restart never completes; refresh patches to Recreate and CloudCore serves the new cert" {
  cluster_up
  # what the old scripts ran: the surge pod cannot be scheduled, the old pod (chart certificate) stays
  run kubectl -n kubeedge rollout restart deployment cloudcore
  status_is 0
  run kubectl -n kubeedge rollout status deployment/cloudcore --timeout=1s
  status_is 1
  output_has "1 old replicas are pending termination"
  output_has "error: timed out waiting for the condition"
  [[ $(served_issuer) == *cloudcore-ca* ]]
  # the fix
  reset_calls
  run "$REFRESH" --add-ip 192.168.10.10 --add-edge-ip 192.168.10.21 --stream-endpoint "$FAKE_CC_ENDPOINT" --timeout 10
  status_is 0
  output_has "strategy is RollingUpdate"
  called "-n kubeedge patch deployment cloudcore --type merge -p"
  # the stub refuses a Recreate merge patch that keeps rollingUpdate (as the API server does)
  [[ $(cat "$KP_STUB_STATE/cloudcore-strategy") == Recreate ]]
  called "rollout status deployment/cloudcore --timeout=10s"
  fake_cloudcore_serves_new 192.168.10.21
  # idempotent: the next run reads Recreate and patches nothing
  reset_calls
  run "$REFRESH" --stream-endpoint "$FAKE_CC_ENDPOINT" --timeout 10
  status_is 0
  output_has "strategy: Recreate"
  not_called "patch"
  not_called "rollout restart"
}

@test "old install: the Secret already matches but CloudCore serves the stale cert; the second run patches and restarts" {
  cluster_up   # RollingUpdate, as the old scripts left it; CloudCore serves the chart's certificate
  run "$REFRESH" --add-ip 192.168.10.10 --add-edge-ip 192.168.10.21 --no-apply
  status_is 0
  mkdir -p "$KP_STUB_STATE/secret-cloudcore"
  cp "$KP_SYSROOT"/etc/kubeprepare/stream-certs/{stream.crt,stream.key,streamCA.crt} "$KP_STUB_STATE/secret-cloudcore/"
  [[ $(served_issuer) == *cloudcore-ca* ]]
  reset_calls
  run "$REFRESH" --stream-endpoint "$FAKE_CC_ENDPOINT" --timeout 10
  status_is 0
  output_has "already holds this certificate, but the running CloudCore does not serve it"
  not_called "create secret"
  called "patch deployment cloudcore --type merge"
  called "rollout restart deployment cloudcore"
  fake_cloudcore_serves_new 192.168.10.10
}

@test "a CloudCore that never serves the new certificate: exit 5 naming what is missing" {
  cluster_up Recreate
  fake_cloudcore_stop
  # a CloudCore stand-in that keeps the chart's certificate whatever happens (nothing restarts it)
  kp_helm_like_cert "$BATS_TEST_TMPDIR/helm"
  mkdir -p "$BATS_TEST_TMPDIR/stale"
  cp "$BATS_TEST_TMPDIR/helm/helm.crt" "$BATS_TEST_TMPDIR/stale/stream.crt"
  cp "$BATS_TEST_TMPDIR/helm/helm.key" "$BATS_TEST_TMPDIR/stale/stream.key"
  serve_cert "$BATS_TEST_TMPDIR/stale"
  run "$REFRESH" --add-ip 192.168.10.10 --stream-endpoint "$ENDPOINT" --timeout 2
  status_is 5
  output_has "CloudCore did not serve the new stream certificate within 2s"
  output_has "lacks the SAN IP(s) 192.168.10.10"
}

@test "kubectl stub follows the API: Recreate by JSON merge patch must null rollingUpdate; two nodes let RollingUpdate finish" {
  cluster_up
  run kubectl -n kubeedge patch deployment cloudcore --type merge -p '{"spec":{"strategy":{"type":"Recreate"}}}'
  status_is 1
  output_has "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy \`type\` is 'Recreate'"
  [[ $(kubectl -n kubeedge get deployment cloudcore -o jsonpath='{.spec.strategy.type}') == RollingUpdate ]]
  KP_FAKE_CLOUD_NODES=2 run kubectl -n kubeedge rollout restart deployment cloudcore
  KP_FAKE_CLOUD_NODES=2 run kubectl -n kubeedge rollout status deployment/cloudcore --timeout=1s
  status_is 0
  output_has 'deployment "cloudcore" successfully rolled out'
}
