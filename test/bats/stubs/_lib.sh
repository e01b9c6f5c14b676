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
