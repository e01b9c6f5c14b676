#!/usr/bin/env bats
# edge/uninstall.sh against the stubs.
load helpers/common

TOKEN=$(printf 'a%.0s' {1..64}).eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJl
setup() { kp_setup edge; }
edge_install() { "$BUNDLE/install.sh" --cloud 192.168.10.10:10000 --token "$TOKEN" --node-name edge-01 "$@"; }

@test "edge uninstall: needs --yes; --dry-run changes nothing" {
  run "$BUNDLE/uninstall.sh"
  status_is 2
  output_has "without --yes"
  run edge_install
  status_is 0
  before=$(tree_of | grep -v '\.log ')
  reset_calls
  run "$BUNDLE/uninstall.sh" --dry-run
  status_is 0
  refute_mutations
  [[ $(tree_of | grep -v '\.log ') == "$before" ]]
}

@test "edge uninstall: removes edgecore and the containerd we installed; a re-install works" {
  run edge_install
  status_is 0
  reset_calls
  run "$BUNDLE/uninstall.sh" --yes
  status_is 0
  called "keadm reset edge --force"
  called "systemctl disable --now containerd"
  for f in /usr/local/bin/containerd /usr/local/bin/ctr /usr/local/sbin/runc /opt/cni/bin/bridge \
    /etc/containerd/config.toml /etc/systemd/system/containerd.service /etc/cni/net.d/10-kubeprepare-bridge.conflist \
    /etc/kubeedge /etc/kubeprepare /usr/local/bin/keadm; do
    [[ ! -e $KP_SYSROOT$f ]] || { echo "left behind: $f" >&2; false; }
  done
  reset_calls
  run "$BUNDLE/uninstall.sh" --yes
  status_is 0
  not_called "keadm reset"
  not_called "systemctl disable"
  run edge_install
  status_is 0
  called "keadm join"
}

@test "edge uninstall: a containerd that was there before is left alone" {
  mkdir -p "$KP_SYSROOT/usr/bin" "$KP_SYSROOT/etc/containerd"
  printf '#!/bin/sh\n' >"$KP_SYSROOT/usr/bin/containerd"
  chmod +x "$KP_SYSROOT/usr/bin/containerd"
  printf 'version = 2\n' >"$KP_SYSROOT/etc/containerd/config.toml"
  . "$KP_STUB_DIR/_lib.sh"
  kp_make_socket "$KP_SYSROOT/run/containerd/containerd.sock"
  run edge_install
  status_is 0
  reset_calls
  run "$BUNDLE/uninstall.sh" --yes
  status_is 0
  output_has "left as it is"
  not_called "systemctl disable --now containerd"
  [[ -f $KP_SYSROOT/etc/containerd/config.toml && -x $KP_SYSROOT/usr/bin/containerd ]]
}
