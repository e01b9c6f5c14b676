#!/usr/bin/env bats
# manifests/iptables-metrics-setup.sh against the REAL iptables, inside a network namespace made
# for each test with `unshare -n` (never the host's own tables). Needs root (CI runs as root).
load helpers/common

setup() {
  kp_setup cloud
  # the real iptables: no stub directory in this PATH
  REAL_PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$KP_STUB_DIR" | paste -sd: -)
  export REAL_PATH
  SCRIPT=$BUNDLE/manifests/iptables-metrics-setup.sh
  export SCRIPT
  if ! unshare -n true 2>/dev/null; then
    echo "unshare -n failed: these tests need root and network namespaces (run the suite as root)" >&2
    return 1
  fi
  PATH=$REAL_PATH command -v iptables >/dev/null || { echo "iptables not installed" >&2; return 1; }
}

# in_netns 'commands': runs bash commands in a fresh, empty network namespace.
in_netns() { PATH=$REAL_PATH unshare -n bash -euo pipefail -c "$1"; }

@test "netns: the rule is added once, a second run adds no duplicate" {
  run in_netns '
    "$SCRIPT" --cloudcore-ip 192.168.10.10 --no-persist
    "$SCRIPT" --cloudcore-ip 192.168.10.10 --no-persist
    iptables -t nat -S OUTPUT'
  status_is 0
  output_has "rule already present"
  rules=$(grep -- '^-A OUTPUT' <<<"$output")
  [[ $(grep -c -- '--dport 10350' <<<"$rules") -eq 1 ]]
  [[ $rules == *"-p tcp -m tcp --dport 10350 -m comment --comment kubeprepare-metrics-dnat -j DNAT --to-destination 192.168.10.10:10003"* ]]
}

@test "netns: a new CloudCore address replaces the old rule and hand-made copies" {
  run in_netns '
    iptables -t nat -A OUTPUT -p tcp --dport 10350 -j DNAT --to-destination 10.9.9.9:10003
    "$SCRIPT" --cloudcore-ip 192.168.10.10 --no-persist
    "$SCRIPT" --cloudcore-ip 192.168.10.11 --no-persist
    iptables -t nat -S OUTPUT'
  status_is 0
  rules=$(grep -- '^-A OUTPUT' <<<"$output")
  [[ $(grep -c -- '--dport 10350' <<<"$rules") -eq 1 ]]
  [[ $rules == *"--to-destination 192.168.10.11:10003"* ]]
}

@test "netns: --remove deletes every copy and leaves other rules alone" {
  run in_netns '
    iptables -t nat -A OUTPUT -p tcp --dport 8080 -j DNAT --to-destination 10.0.0.1:80
    "$SCRIPT" --cloudcore-ip 192.168.10.10 --no-persist
    iptables -t nat -A OUTPUT -p tcp --dport 10350 -j DNAT --to-destination 10.9.9.9:10003
    "$SCRIPT" --remove --no-persist
    "$SCRIPT" --remove --no-persist
    echo "=== rules"
    iptables -t nat -S OUTPUT'
  status_is 0
  output_has "nothing to remove"
  rules=${output##*=== rules}
  [[ $rules != *"10350"* ]]
  [[ $rules == *"--dport 8080"* ]]
}

@test "netns: --dry-run adds nothing" {
  run in_netns '
    "$SCRIPT" --cloudcore-ip 192.168.10.10 --dry-run
    echo "=== rules"
    iptables -t nat -S OUTPUT'
  status_is 0
  output_has "[DRY-RUN] iptables -w -t nat -A OUTPUT"
  [[ ${output##*=== rules} != *"10350"* ]]
}

@test "netns: persistence writes /etc/iptables/rules.v4 when that directory exists" {
  mkdir -p "$KP_SYSROOT/etc/iptables"
  run in_netns '"$SCRIPT" --cloudcore-ip 192.168.10.10'
  status_is 0
  grep -q -- '--dport 10350 .*--to-destination 192.168.10.10:10003' "$KP_SYSROOT/etc/iptables/rules.v4"
  [[ $(stat -c %a "$KP_SYSROOT/etc/iptables/rules.v4") == 600 ]]
  run in_netns '"$SCRIPT" --cloudcore-ip 192.168.10.10 && "$SCRIPT" --remove'
  status_is 0
  file_lacks "$KP_SYSROOT/etc/iptables/rules.v4" '--dport 10350'
}

@test "netns: the default address comes from install.sh's state" {
  mkdir -p "$KP_SYSROOT/etc/kubeprepare"
  printf 'ADVERTISE_ADDRESS=203.0.113.7\nNODE_IP=10.2.0.12\n' >"$KP_SYSROOT/etc/kubeprepare/cloud.env"
  run in_netns '"$SCRIPT" --no-persist && iptables -t nat -S OUTPUT'
  status_is 0
  output_has "--to-destination 10.2.0.12:10003"
}

@test "iptables-metrics-setup.sh: bad arguments" {
  run "$SCRIPT"
  status_is 2
  output_has "--cloudcore-ip is required"
  run "$SCRIPT" --cloudcore-ip 1.2.3
  status_is 2
  run "$SCRIPT" --cloudcore-ip 127.0.0.1
  status_is 2
  run "$SCRIPT" --cloudcore-ip 10.0.0.1 --stream-port 70000
  status_is 2
  run "$SCRIPT" --bogus
  status_is 2
  output_has "unknown argument: --bogus"
}
