#!/usr/bin/env bats
# manifests/iptables-metrics-setup.sh against the REAL iptables, inside a network namespace made
# for each test with `unshare -n` (never the host's own tables). Needs root (CI runs as root).
# Only kubectl and systemctl are stubs here (a PATH directory holding just those two): the tunnelport
# record and the edge nodes' kubelet ports come from the kubectl stub, shaped as CloudCore writes them.
load helpers/common

setup() {
  kp_setup cloud
  # the real iptables and ip: the stub directory is not in this PATH, only kubectl and systemctl are
  API_STUBS=$BATS_TEST_TMPDIR/api-stubs
  mkdir -p "$API_STUBS"
  # the two stubs and every library they source (_lib.sh, _rollout.sh, ...)
  ln -s "$KP_STUB_DIR/kubectl" "$KP_STUB_DIR/systemctl" "$KP_STUB_DIR"/_*.sh "$API_STUBS/"
  REAL_PATH=$API_STUBS:$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$KP_STUB_DIR" | paste -sd: -)
  export REAL_PATH
  SCRIPT=$BUNDLE/manifests/iptables-metrics-setup.sh
  export SCRIPT
  if ! unshare -n true 2>/dev/null; then
    echo "unshare -n failed: these tests need root and network namespaces (run the suite as root)" >&2
    return 1
  fi
  PATH=$REAL_PATH command -v iptables >/dev/null || { echo "iptables not installed" >&2; return 1; }
  PATH=$REAL_PATH command -v ip >/dev/null || { echo "ip (iproute2) not installed" >&2; return 1; }
  # a cluster whose CloudCore (192.168.10.10) is up: kubeconfig, API, ConfigMap kubeedge/tunnelport
  mkdir -p "$KP_SYSROOT/etc/rancher/k3s"
  touch "$KP_SYSROOT/etc/rancher/k3s/k3s.yaml" "$KP_STUB_STATE/k3s-running" "$KP_STUB_STATE/kubeedge"
  export KP_FAKE_EDGE_NODES="edge-01"
}

# in_netns 'commands': runs bash commands in a fresh, empty network namespace.
in_netns() { PATH=$REAL_PATH unshare -n bash -euo pipefail -c "$1"; }

# CloudCore's config as the chart renders it (configmap_cloudcore.yaml: iptablesManager enable/mode)
cloudcore_config() { # mode enable
  printf 'modules:\n  cloudStream:\n    enable: true\n  iptablesManager:\n    enable: %s\n    mode: %s\n' "$2" "$1" \
    >"$BATS_TEST_TMPDIR/cloudcore.yaml"
  export KP_FAKE_CLOUDCORE_YAML=$BATS_TEST_TMPDIR/cloudcore.yaml
}
# iptables-manager absent: the DaemonSet is not there and the module is external (or disabled)
no_iptables_manager() { touch "$KP_STUB_STATE/no-iptables-manager"; cloudcore_config external true; }

OURS='-A KUBEPREPARE-TUNNEL -p tcp -m tcp --dport 10351 -m comment --comment kubeprepare-tunnel-port -j DNAT --to-destination 192.168.10.10:10003'
OLD_RULE='iptables -t nat -A OUTPUT -p tcp --dport 10350 -m comment --comment kubeprepare-metrics-dnat -j DNAT --to-destination 192.168.10.10:10003'
# what iptables-manager runs (reconcile() of kubeedge cloud/pkg/cloudstream/iptables/iptables.go @ v1.22.0,
# same argument order)
UPSTREAM_RULES='
  iptables -t nat -N TUNNEL-PORT
  iptables -t nat -A OUTPUT -m comment --comment "kubeedge tunnel port" -j TUNNEL-PORT
  iptables -t nat -A PREROUTING -m comment --comment "kubeedge tunnel port" -j TUNNEL-PORT
  iptables -t nat -A TUNNEL-PORT -p tcp -j DNAT --dport 10351 --to 192.168.10.10:10003'

@test "netns: no iptables-manager: our chain, one rule per recorded tunnel port, jumped from OUTPUT and PREROUTING; a second run changes nothing" {
  no_iptables_manager
  run in_netns '
    "$SCRIPT" --no-persist
    first=$(iptables -t nat -S)
    "$SCRIPT" --no-persist
    [[ $(iptables -t nat -S) == "$first" ]] && echo "SECOND RUN: TABLE UNCHANGED"
    echo "=== second"; iptables -t nat -S'
  status_is 0
  output_has "SECOND RUN: TABLE UNCHANGED"
  second=${output##*=== second}
  # exactly our chain, its one rule and the two jumps
  [[ $(grep -c -- '^-A ' <<<"$second") -eq 3 ]]
  grep -qxF -- "$OURS" <<<"$second"
  grep -qxF -- '-A OUTPUT -m comment --comment kubeprepare-tunnel-port -j KUBEPREPARE-TUNNEL' <<<"$second"
  grep -qxF -- '-A PREROUTING -m comment --comment kubeprepare-tunnel-port -j KUBEPREPARE-TUNNEL' <<<"$second"
  grep -qxF -- '-N KUBEPREPARE-TUNNEL' <<<"$second"
  # the second run added nothing
  [[ $(grep -c -- '\[RUN\] iptables -w -t nat -A' <<<"$output") -eq 3 ]]
  output_has "edge node edge-01: kubeletEndpoint port 10351 (a recorded tunnel port)"
}

@test "netns: real connections: <edge>:10351 reaches CloudCore's stream port, <other host>:10350 and other ports are not rewritten" {
  no_iptables_manager
  printf '{"ipTunnelPort":{"10.0.0.10":10351},"port":{"10351":true}}' >"$KP_STUB_STATE/tunnelport-record"
  # ask HOST PORT: one TCP connection, prints what the listener answered (10 s at most)
  printf '%s\n' '#!/usr/bin/env bash' 'exec 3<>"/dev/tcp/$1/$2" && read -r -t 5 l <&3 && echo "$1:$2 -> $l"' >"$BATS_TEST_TMPDIR/ask"
  chmod +x "$BATS_TEST_TMPDIR/ask"
  run in_netns '
    ip link set lo up
    ip addr add 10.0.0.10/32 dev lo   # the cloud node (CloudCore, hostNetwork)
    ip addr add 10.0.0.21/32 dev lo   # an edge node
    ip addr add 10.0.0.99/32 dev lo   # some other host
    node -e "
      const net = require(\"net\");
      const l = [[\"10.0.0.10\", 10003, \"cloudcore-stream\"], [\"10.0.0.21\", 10351, \"edge-10351\"],
                 [\"10.0.0.99\", 10350, \"other-10350\"], [\"10.0.0.99\", 10351, \"other-10351\"], [\"10.0.0.21\", 8080, \"edge-8080\"]];
      let up = 0;
      for (const [h, p, n] of l) net.createServer((s) => s.end(n + \"\\n\")).listen(p, h, () => { if (++up === l.length) console.log(\"listening\"); });
    " >"$BATS_TEST_TMPDIR/listeners.out" &
    pid=$!
    trap "kill $pid" EXIT
    for _ in $(seq 50); do grep -q listening "$BATS_TEST_TMPDIR/listeners.out" && break; sleep 0.1; done
    ask() { timeout 10 "$BATS_TEST_TMPDIR/ask" "$1" "$2"; }
    echo "== before"; ask 10.0.0.21 10351; ask 10.0.0.99 10350
    '"${OLD_RULE/192.168.10.10/10.0.0.10}"'
    echo "== old rule"; ask 10.0.0.99 10350
    "$SCRIPT" --no-persist >/dev/null
    echo "== ours"; ask 10.0.0.21 10351; ask 10.0.0.99 10350; ask 10.0.0.21 8080
    "$SCRIPT" --remove --no-persist >/dev/null
    echo "== removed"; ask 10.0.0.21 10351'
  status_is 0
  expect() { [[ $output == *"$1"* ]] || { printf 'expected: %s\n%s\n' "$1" "$output" >&2; return 1; }; }
  expect "== before
10.0.0.21:10351 -> edge-10351
10.0.0.99:10350 -> other-10350"
  # what the scripts of earlier versions did: every tcp/10350 of the host went to CloudCore
  expect "== old rule
10.0.0.99:10350 -> cloudcore-stream"
  # ours: the tunnel port reaches CloudStream, the old rewrite is gone, other ports are untouched
  expect "== ours
10.0.0.21:10351 -> cloudcore-stream
10.0.0.99:10350 -> other-10350
10.0.0.21:8080 -> edge-8080"
  expect "== removed
10.0.0.21:10351 -> edge-10351"
}

@test "netns: the rule of earlier versions is removed; a hand-made rule and other rules are left alone" {
  no_iptables_manager
  run in_netns '
    iptables -t nat -A OUTPUT -p tcp --dport 8080 -j DNAT --to-destination 10.0.0.1:80
    '"$OLD_RULE"'
    iptables -t nat -A OUTPUT -d 10.9.9.9/32 -p tcp --dport 10350 -j DNAT --to-destination 10.9.9.9:10003
    "$SCRIPT" --no-persist
    echo "=== rules"; iptables -t nat -S OUTPUT'
  status_is 0
  output_has "removing the rule of an earlier KubePrepare version"
  output_has "that KubePrepare did not add is in nat OUTPUT (left alone"
  rules=${output##*=== rules}
  [[ $rules != *kubeprepare-metrics-dnat* ]]
  [[ $rules == *"-A OUTPUT -d 10.9.9.9/32 -p tcp -m tcp --dport 10350 -j DNAT --to-destination 10.9.9.9:10003"* ]]
  [[ $rules == *"--dport 8080 -j DNAT --to-destination 10.0.0.1:80"* ]]
}

@test "netns: a changed record replaces our stale rule and adds a second CloudCore's port" {
  no_iptables_manager
  run in_netns '
    "$SCRIPT" --no-persist >/dev/null
    printf "%s" "{\"ipTunnelPort\":{\"192.168.10.11\":10351,\"192.168.10.12\":10352},\"port\":{\"10351\":true,\"10352\":true}}" >"$KP_STUB_STATE/tunnelport-record"
    "$SCRIPT" --no-persist
    echo "=== rules"; iptables -t nat -S KUBEPREPARE-TUNNEL'
  status_is 0
  output_has "removing a stale rule: $OURS"
  rules=${output##*=== rules}
  [[ $(grep -c -- '^-A KUBEPREPARE-TUNNEL' <<<"$rules") -eq 2 ]]
  grep -qxF -- '-A KUBEPREPARE-TUNNEL -p tcp -m tcp --dport 10351 -m comment --comment kubeprepare-tunnel-port -j DNAT --to-destination 192.168.10.11:10003' <<<"$rules"
  grep -qxF -- '-A KUBEPREPARE-TUNNEL -p tcp -m tcp --dport 10352 -m comment --comment kubeprepare-tunnel-port -j DNAT --to-destination 192.168.10.12:10003' <<<"$rules"
}

@test "netns: iptables-manager present: its TUNNEL-PORT DNAT is verified, ours is removed, nothing is added" {
  cloudcore_config external true # and the DaemonSet exists (kubectl stub)
  run in_netns '
    '"$UPSTREAM_RULES"'
    "$SCRIPT" --rules ours --no-persist >/dev/null
    echo "=== ours $(iptables -t nat -S | grep -c KUBEPREPARE)"
    "$SCRIPT" --no-persist
    echo "=== rules"; iptables -t nat -S'
  status_is 0
  output_has "the tunnel-port rules are kept by iptables-manager (DaemonSet kubeedge/cloud-iptables-manager"
  output_has "verified: nat TUNNEL-PORT -p tcp --dport 10351 -j DNAT --to-destination 192.168.10.10:10003"
  output_has "=== ours 4" # -N and three -A lines, before the auto run
  rules=${output##*=== rules}
  [[ $rules != *KUBEPREPARE* ]]
  [[ $rules == *"-A TUNNEL-PORT -p tcp -m tcp --dport 10351 -j DNAT --to-destination 192.168.10.10:10003"* ]]
}

@test "netns: CloudCore in internal mode counts as upstream; missing upstream rules fail verification (exit 4)" {
  touch "$KP_STUB_STATE/no-iptables-manager"
  cloudcore_config internal true
  run in_netns '"$SCRIPT" --no-persist --timeout 1'
  status_is 4
  output_has "kept by CloudCore (iptablesManager internal mode)"
  output_has "missing: -A TUNNEL-PORT -p tcp -m tcp --dport 10351 -j DNAT --to-destination 192.168.10.10:10003"
  run in_netns '
    '"$UPSTREAM_RULES"'
    "$SCRIPT" --no-persist --timeout 1'
  status_is 0
}

@test "netns: --remove deletes only ours and the old rule, never TUNNEL-PORT; a second --remove is a no-op" {
  no_iptables_manager
  run in_netns '
    '"$UPSTREAM_RULES"'
    iptables -t nat -A OUTPUT -p tcp --dport 8080 -j DNAT --to-destination 10.0.0.1:80
    "$SCRIPT" --rules ours --no-persist >/dev/null
    '"$OLD_RULE"'
    "$SCRIPT" --remove --no-persist
    echo "=== again"
    "$SCRIPT" --remove --no-persist
    echo "=== rules"
    iptables -t nat -S'
  status_is 0
  again=${output#*=== again}; again=${again%%=== rules*}
  [[ $again != *"[RUN]"* ]]
  rules=${output##*=== rules}
  [[ $rules != *KUBEPREPARE* && $rules != *kubeprepare* ]]
  [[ $rules == *"-A TUNNEL-PORT -p tcp -m tcp --dport 10351 -j DNAT --to-destination 192.168.10.10:10003"* ]]
  [[ $rules == *'-A OUTPUT -m comment --comment "kubeedge tunnel port" -j TUNNEL-PORT'* ]]
  [[ $rules == *"--dport 8080"* ]]
}

@test "netns: --dry-run writes no rule, no file, and no kubectl write" {
  no_iptables_manager
  run in_netns '
    '"$OLD_RULE"'
    before=$(iptables -t nat -S)
    "$SCRIPT" --dry-run
    [[ $(iptables -t nat -S) == "$before" ]] && echo "TABLE UNCHANGED"'
  status_is 0
  output_has "TABLE UNCHANGED"
  output_has "[DRY-RUN] iptables -w -t nat -D OUTPUT -p tcp -m tcp --dport 10350"
  output_has "[DRY-RUN] iptables -w -t nat -A KUBEPREPARE-TUNNEL -p tcp -m tcp --dport 10351"
  output_has "[DRY-RUN] write $KP_SYSROOT/etc/systemd/system/kubeprepare-tunnel-dnat.service"
  [[ ! -e $KP_SYSROOT/etc/systemd && ! -e $KP_SYSROOT/usr/local/lib ]]
  refute_mutations
  # no API at all (fresh host): the dry run says what it would read and stops
  rm "$KP_STUB_STATE/k3s-running"
  run in_netns '"$SCRIPT" --dry-run'
  status_is 0
  output_has "[DRY-RUN] read ConfigMap kubeedge/tunnelport"
}

# ---- persistence (item 5): only our rules, through a oneshot unit after k3s.service ----
@test "netns: persistence is a oneshot unit after k3s.service that re-runs a copy of this script; no ruleset is saved" {
  no_iptables_manager
  mkdir -p "$KP_SYSROOT/etc/iptables"
  run in_netns '"$SCRIPT"'
  status_is 0
  unit=$KP_SYSROOT/etc/systemd/system/kubeprepare-tunnel-dnat.service
  [[ -f $unit && $(stat -c %a "$unit") == 644 ]]
  grep -qx 'After=network-online.target k3s.service' "$unit"
  grep -qx 'Type=oneshot' "$unit"
  grep -qx 'RemainAfterExit=yes' "$unit"
  grep -qx 'WantedBy=multi-user.target' "$unit"
  grep -qx 'ExecStart=/usr/local/lib/kubeprepare/iptables-metrics-setup.sh --no-persist --timeout 600 --stream-port 10003' "$unit"
  # TimeoutStartSec covers the script's own wait for the API
  [[ $(sed -n 's/^TimeoutStartSec=//p' "$unit") -gt 600 ]]
  cmp "$SCRIPT" "$KP_SYSROOT/usr/local/lib/kubeprepare/iptables-metrics-setup.sh"
  called "systemctl enable kubeprepare-tunnel-dnat.service"
  [[ -z $(find "$KP_SYSROOT/etc/iptables" -mindepth 1) ]]
  not_called "iptables-save"
  not_called "netfilter-persistent"
  # what the unit runs at boot restores our chain in an empty table
  run in_netns '"$KP_SYSROOT/usr/local/lib/kubeprepare/iptables-metrics-setup.sh" --no-persist --timeout 600 --stream-port 10003 >/dev/null; iptables -t nat -S KUBEPREPARE-TUNNEL'
  status_is 0
  output_has "$OURS"
  # --remove takes the unit and the copy away, nothing else
  touch "$KP_SYSROOT/etc/systemd/system/k3s.service"
  reset_calls
  run in_netns '"$SCRIPT" --remove'
  status_is 0
  [[ ! -e $unit && ! -e $KP_SYSROOT/usr/local/lib/kubeprepare/iptables-metrics-setup.sh ]]
  [[ -f $KP_SYSROOT/etc/systemd/system/k3s.service ]]
  called "systemctl disable kubeprepare-tunnel-dnat.service"
}

@test "netns: an old whole-ruleset save is reported, not edited" {
  no_iptables_manager
  mkdir -p "$KP_SYSROOT/etc/iptables"
  printf '*nat\n-A OUTPUT -p tcp -m tcp --dport 10350 -m comment --comment kubeprepare-metrics-dnat -j DNAT --to-destination 192.168.10.10:10003\nCOMMIT\n' \
    >"$KP_SYSROOT/etc/iptables/rules.v4"
  before=$(sha256sum <"$KP_SYSROOT/etc/iptables/rules.v4")
  run in_netns '"$SCRIPT" --no-persist'
  status_is 0
  output_has "$KP_SYSROOT/etc/iptables/rules.v4 holds a whole ruleset saved by an earlier KubePrepare version"
  [[ $(sha256sum <"$KP_SYSROOT/etc/iptables/rules.v4") == "$before" ]]
}

@test "iptables-metrics-setup.sh: bad arguments" {
  run "$SCRIPT" --cloudcore-ip 1.2.3
  status_is 2
  run "$SCRIPT" --cloudcore-ip 127.0.0.1
  status_is 2
  run "$SCRIPT" --stream-port 70000
  status_is 2
  run "$SCRIPT" --rules sometimes
  status_is 2
  output_has "--rules: 'sometimes' is not one of auto, upstream, ours"
  run "$SCRIPT" --bogus
  status_is 2
  output_has "unknown argument: --bogus"
}
