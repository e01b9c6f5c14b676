# A stand-in for CloudCore's CloudStream TLS endpoint: a real `openssl s_server` on 127.0.0.1 (random
# free port) serving what CloudCore would serve. CloudCore loads stream.crt/stream.key once, when it
# starts (cloud/pkg/cloudstream/streamserver.go: ListenAndServeTLS); so does this one: it serves the
# Secret the kubectl stub keeps ($KP_STUB_STATE/secret-cloudcore), or, before any, the certificate the
# chart's pre-install hook makes (genCA "cloudcore-ca", DNS names only: _helpers.tpl cloudcore.gen-certs).
# The kubectl stub "replaces the pod" by killing the s_server whose PID is in
# $KP_STUB_STATE/fake-cloudcore.pid; the loop then starts a new one with the current Secret.
# Use: fake_cloudcore_start in setup (sets FAKE_CC_ENDPOINT), fake_cloudcore_stop in teardown.

kp_free_port() {
  node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# kp_helm_like_cert DIR: DIR/helm.crt + DIR/helm.key as the chart makes them.
kp_helm_like_cert() {
  local d=$1
  mkdir -p "$d"
  [[ -f $d/helm.crt ]] && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/helm-ca.key" -out "$d/helm-ca.crt" -days 365 -subj /CN=cloudcore-ca 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$d/helm.key" -out "$d/helm.csr" -subj /CN=cloudcore 2>/dev/null
  printf 'subjectAltName=DNS:cloudcore.kubeedge,DNS:cloudcore.kubeedge.svc\nextendedKeyUsage=serverAuth,clientAuth\n' >"$d/helm.ext"
  openssl x509 -req -in "$d/helm.csr" -CA "$d/helm-ca.crt" -CAkey "$d/helm-ca.key" -set_serial 1 -days 365 \
    -extfile "$d/helm.ext" -out "$d/helm.crt" 2>/dev/null
}

# kp_serve_tls CERT KEY PORT: one s_server in the background of the calling shell; its PID in TLS_PID.
kp_serve_tls() {
  openssl s_server -accept "127.0.0.1:$3" -cert "$1" -key "$2" -www -quiet </dev/null >/dev/null 2>&1 3>&- &
  TLS_PID=$!
}

# kp_wait_tls PORT: until something accepts TLS on 127.0.0.1:PORT (5 s at most).
kp_wait_tls() {
  local i
  for i in $(seq 1 100); do
    openssl s_client -connect "127.0.0.1:$1" </dev/null >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "nothing serves TLS on 127.0.0.1:$1" >&2
  return 1
}

fake_cloudcore_start() {
  local s=$KP_STUB_STATE helm=${BATS_FILE_TMPDIR:?}/helm-cert
  kp_helm_like_cert "$helm"
  FAKE_CC_PORT=$(kp_free_port)
  FAKE_CC_ENDPOINT=127.0.0.1:$FAKE_CC_PORT
  # the scripts' default endpoint in tests (TEST-ONLY, partials/stream-cert-check.hbs): never the node IP
  KP_STREAM_ENDPOINT=$FAKE_CC_ENDPOINT
  export FAKE_CC_PORT FAKE_CC_ENDPOINT KP_STREAM_ENDPOINT
  (
    while [[ ! -e $s/fake-cloudcore.stop ]]; do
      if [[ -f $s/secret-cloudcore/stream.crt && -f $s/secret-cloudcore/stream.key ]]; then
        crt=$s/secret-cloudcore/stream.crt key=$s/secret-cloudcore/stream.key
      else
        crt=$helm/helm.crt key=$helm/helm.key
      fi
      openssl s_server -accept "127.0.0.1:$FAKE_CC_PORT" -cert "$crt" -key "$key" -www -quiet </dev/null >/dev/null 2>&1 &
      pid=$!
      echo "$pid" >"$s/fake-cloudcore.pid"
      wait "$pid" || true
    done
  ) </dev/null >/dev/null 2>&1 3>&- &
  FAKE_CC_LOOP=$!
  kp_wait_tls "$FAKE_CC_PORT"
}

# the certificate the fake CloudCore serves right now (PEM)
fake_cloudcore_served() { openssl s_client -connect "$FAKE_CC_ENDPOINT" </dev/null 2>/dev/null | openssl x509; }

# fake_cloudcore_serves_new IP: the fake CloudCore serves the bundle's stream certificate now: one that
# holds IP and is signed by the K3s server CA (not the chart's, from cloudcore-ca).
fake_cloudcore_serves_new() {
  local cert
  cert=$(fake_cloudcore_served)
  [[ $(openssl x509 -noout -ext subjectAltName <<<"$cert") == *"IP Address:$1"* ]] &&
    [[ $(openssl x509 -noout -issuer <<<"$cert") == *k3s-server-ca* ]]
}

fake_cloudcore_stop() {
  [[ -n ${FAKE_CC_LOOP-} ]] || return 0
  touch "$KP_STUB_STATE/fake-cloudcore.stop"
  if [[ -f $KP_STUB_STATE/fake-cloudcore.pid ]]; then kill "$(cat "$KP_STUB_STATE/fake-cloudcore.pid")" 2>/dev/null || true; fi
  wait "$FAKE_CC_LOOP" 2>/dev/null || true
  FAKE_CC_LOOP=""
}
