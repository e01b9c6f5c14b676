# Shared by the PATH stubs of the bats suite. Every stub records its call as one line
#   <name> <arg> <arg>...      (args %q-quoted)
# in $KP_STUB_LOG and keeps whatever state it emulates under $KP_STUB_STATE.
: "${KP_STUB_LOG:?KP_STUB_LOG must be set}"
: "${KP_STUB_STATE:?KP_STUB_STATE must be set}"
mkdir -p "$KP_STUB_STATE"
kp_record() {
  local out="$1" a
  shift
  for a in "$@"; do out+=" $(printf '%q' "$a")"; done
  printf '%s\n' "$out" >>"$KP_STUB_LOG"
}
# kp_make_socket PATH: a real unix socket file (what [[ -S ]] looks for).
kp_make_socket() {
  mkdir -p "$(dirname "$1")"
  rm -f "$1"
  node -e "const s=require('net').createServer().listen(process.argv[1],()=>{s.unref();process.exit(0)})" "$1"
}
# kp_tunnelport_record: the annotation tunnelportrecord.kubeedge.io of ConfigMap kubeedge/tunnelport.
# CloudCore writes it at start, keyed by its OWN IP (NegotiateTunnelPort, first port 10351 =
# constants.ServerPort+1; kubeedge cloud/cmd/cloudcore/app/server.go @ v1.22.0); a test may put
# another record in $KP_STUB_STATE/tunnelport-record.
kp_tunnelport_record() {
  if [[ -f $KP_STUB_STATE/tunnelport-record ]]; then
    cat "$KP_STUB_STATE/tunnelport-record"
  else
    printf '{"ipTunnelPort":{"192.168.10.10":10351},"port":{"10351":true}}'
  fi
}
