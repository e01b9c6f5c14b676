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
# kp_passthrough_run NAME ARGS...: kp_passthrough in a subshell (returns instead of replacing the stub).
kp_passthrough_run() { (kp_passthrough "$@"); }
# kp_passthrough NAME ARGS...: runs the real NAME (the next one on PATH after this stub directory), for
# the stubs that only record a call (install, tar) so that not_called/called can see it.
kp_passthrough() {
  local name=$1 self d
  shift
  self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
  local IFS=:
  for d in $PATH; do
    [[ -n $d && -x $d/$name && ! -d $d/$name ]] || continue
    [[ $(cd "$d" && pwd -P) == "$self" ]] && continue
    exec "$d/$name" "$@"
  done
  printf '%s: command not found (stub pass-through)\n' "$name" >&2
  exit 127
}
# kp_cobra_check "CMD PATH" SILENCE_USAGE "FLAGS" ARGS...: parses ARGS as pflag does for a cobra command
# whose flag set is FLAGS (words: name, name:x for a shorthand -x, a trailing ! for a boolean); on an
# error prints what cobra prints ("Error: unknown flag: --x", then the usage unless SilenceUsage) and
# exits 1, as keadm's main does. -h/--help prints the usage and exits 0.
kp_cobra_check() {
  local cmd=$1 silence=$2 spec=" $3 help:h! " a name short w
  shift 3
  _kp_cobra_fail() {
    printf 'Error: %s\n' "$1" >&2
    if [[ $silence != 1 ]]; then printf 'Usage:\n  %s [flags]\n\nFlags:\n' "$cmd" >&2; for w in $spec; do printf '      --%s\n' "${w%%[:!]*}" >&2; done; fi
    exit 1
  }
  _kp_cobra_lookup() { # name -> the spec word, or nothing
    for w in $spec; do [[ ${w%%[:!]*} == "$1" ]] && { printf '%s' "$w"; return 0; }; done
    return 1
  }
  while (($#)); do
    a=$1
    shift
    case $a in
      --) break ;;
      --*)
        name=${a#--}
        name=${name%%=*}
        w=$(_kp_cobra_lookup "$name") || _kp_cobra_fail "unknown flag: --$name"
        [[ $name == help ]] && { printf 'Usage:\n  %s [flags]\n' "$cmd"; exit 0; }
        if [[ $w != *! && $a != *=* ]]; then
          (($#)) || _kp_cobra_fail "flag needs an argument: --$name"
          shift
        fi ;;
      -?*)
        short=${a:1:1}
        w=""
        for name in $spec; do [[ $name == *":$short"* ]] && w=$name; done
        [[ -n $w ]] || _kp_cobra_fail "unknown shorthand flag: '$short' in $a"
        [[ $short == h ]] && { printf 'Usage:\n  %s [flags]\n' "$cmd"; exit 0; }
        if [[ $w != *! && ${#a} -eq 2 ]]; then
          (($#)) || _kp_cobra_fail "flag needs an argument: '$short' in $a"
          shift
        fi ;;
    esac
  done
  return 0
}
# kp_wait_files SECONDS FILE...: polls (0.05s) until every FILE exists; 1 after SECONDS.
kp_wait_files() {
  local end f ok
  end=$(($(date +%s%N) + ${1%.*} * 1000000000))
  shift
  while :; do
    ok=1
    for f in "$@"; do [[ -e $f ]] || ok=0; done
    ((ok)) && return 0
    (($(date +%s%N) >= end)) && return 1
    sleep 0.05
  done
}
# kp_edgecore_start: the running edgecore as far as the scripts can see it, in the background (detached
# from the caller's output): it reads edgecore.yaml once at start; without certificates it applies for them
# after KP_FAKE_CERT_DELAY seconds (none while KP_FAKE_CLOUD_NO_CERTS is set), writes CA, certificate and
# key, then, if the config it started with held a token, writes that config back with the token cleared
# after KP_FAKE_TOKEN_CLEANUP_DELAY more seconds (default 30: later than the scripts stop it, so that tests
# not about this race stay deterministic). It stops doing anything once edgecore is stopped.
kp_edgecore_start() {
  local cfg=$KP_SYSROOT/etc/kubeedge/config/edgecore.yaml
  (
    exec </dev/null >/dev/null 2>&1
    for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; ((fd > 2)) && eval "exec $fd>&-"; done
    alive() { [[ -f $KP_STUB_STATE/svc-edgecore-active && $(cat "$KP_STUB_STATE/edgecore-pid" 2>/dev/null) == "$BASHPID" ]]; }
    printf '%s' "$BASHPID" >"$KP_STUB_STATE/edgecore-pid"
    mem=$(cat "$cfg" 2>/dev/null) || exit 0
    [[ -f $KP_SYSROOT/etc/kubeedge/certs/server.crt ]] && exit 0
    [[ -n ${KP_FAKE_CLOUD_NO_CERTS:-} ]] && exit 0
    sleep "${KP_FAKE_CERT_DELAY:-0.3}"
    alive || exit 0
    mkdir -p "$KP_SYSROOT/etc/kubeedge/ca" "$KP_SYSROOT/etc/kubeedge/certs"
    printf 'fake ca\n' >"$KP_SYSROOT/etc/kubeedge/ca/rootCA.crt"
    printf 'fake cert\n' >"$KP_SYSROOT/etc/kubeedge/certs/server.crt"
    printf 'fake key\n' >"$KP_SYSROOT/etc/kubeedge/certs/server.key"
    grep -qE '^ +token: *[^ "]' <<<"$mem" || exit 0
    sleep "${KP_FAKE_TOKEN_CLEANUP_DELAY:-30}"
    alive || exit 0
    sed -E 's/^( +token:).*/\1 ""/' <<<"$mem" >"$cfg"
    touch "$KP_STUB_STATE/edgecore-token-cleaned"
  ) &
  disown
}
# kp_fake NAME DEFAULT: a state the stubs emulate that a test may change, even while a script runs:
# $KP_STUB_STATE/fake-NAME when it exists, else $KP_FAKE_<NAME> (upper case, - as _), else DEFAULT.
kp_fake() {
  local var=KP_FAKE_${1^^}
  var=${var//-/_}
  if [[ -f $KP_STUB_STATE/fake-$1 ]]; then cat "$KP_STUB_STATE/fake-$1"; else printf '%s' "${!var:-$2}"; fi
}
