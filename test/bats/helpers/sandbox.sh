#!/usr/bin/env bash
# sandbox.sh DIR CMD...: runs CMD in a private mount namespace in which every mount is read-only except
# DIR (and the kernel's /proc, /sys, /dev), so that a script under test writing anywhere outside its test
# root (KP_SYSROOT and the bats temp dirs, all below DIR) fails instead of changing this machine; and in a
# private network namespace with only loopback up, so that a script under test dialling a node address
# (the installers are given 192.168.x.x addresses) reaches nothing outside this machine: the connection
# fails at once (no route) instead of sending traffic.
# Needs root (unshare -m -n). Exits 97 when the sandbox cannot be made or does not hold.
set -euo pipefail
dir=$(cd "${1:?usage: sandbox.sh DIR CMD...}" && pwd -P)
shift
exec unshare --mount --net --propagation private bash -c '
  set -euo pipefail
  dir=$1
  shift
  ip link set lo up || { echo "sandbox: cannot bring up loopback in the private network namespace" >&2; exit 97; }
  if ip -4 route show | grep -q .; then
    # only the loopback routes of the local table may exist here
    echo "sandbox: the network namespace has routes: $(ip -4 route show | tr "\n" " ")" >&2
    exit 97
  fi
  mount --bind "$dir" "$dir"
  findmnt -rn -o TARGET | sort -u | while read -r m; do
    m=$(printf "%b" "$m") # findmnt escapes blanks as \x20
    case $m in
      /proc | /proc/* | /sys | /sys/* | /dev | /dev/pts | "$dir") continue ;;
    esac
    mount -o remount,bind,ro "$m" || { echo "sandbox: cannot make $m read-only" >&2; exit 97; }
  done
  probe=/.kp-sandbox-probe.$$
  if ( : >"$probe" ) 2>/dev/null; then rm -f "$probe"; echo "sandbox: / is still writable" >&2; exit 97; fi
  ( : >"$dir/.kp-sandbox-probe" ) || { echo "sandbox: $dir is not writable" >&2; exit 97; }
  rm -f "$dir/.kp-sandbox-probe"
  export KP_SANDBOX=$dir
  exec "$@"
' sandbox "$dir" "$@"
