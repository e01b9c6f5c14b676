#!/usr/bin/env bats
# The stubs say no where upstream does (each behaviour cited in docs/upstream.md): keadm's v1.22.0 flag
# sets and cobra's errors, join waiting for certificates edgecore fetches itself, edgecore writing its
# config back from memory, keadm reset's directory list, kubectl's unknown verbs/types and object states,
# and timeout killing its command.
load helpers/common

setup() {
  kp_stub_env
  export KP_FAKE_EDGECORE_YAML=$KP_REPO/test/fixtures/payload/edgecore-v1.22.yaml
  export PATH="$KP_STUB_DIR:$PATH"
}
teardown() { rm -f "$KP_STUB_STATE/svc-edgecore-active"; } # ends the emulated edgecore

CFG() { printf '%s' "$KP_SYSROOT/etc/kubeedge/config/edgecore.yaml"; }
join_ok() { keadm join --kubeedge-version 1.22.0 --cloudcore-ipport 192.168.10.10:10000 --token "$(printf 'a%.0s' {1..64}).x.y.z" --edgenode-name edge-01 "$@"; }

@test "keadm: an unknown flag is cobra's error, exit 1 (init and reset with the usage, join without)" {
  run keadm init --kubeedge-version 1.22.0 --frobnicate
  status_is 1
  output_has "Error: unknown flag: --frobnicate"
  output_has "Usage:"
  run keadm join --cloudcore-ipport 1.2.3.4:10000 --bogus x
  status_is 1
  output_has "Error: unknown flag: --bogus"
  [[ $output != *Usage:* ]]
  run keadm reset edge --force --kube-config /x # reset edge has no --kube-config
  status_is 1
  output_has "unknown flag: --kube-config"
  run keadm gettoken --kubeconfig /x
  status_is 1
  output_has "unknown flag: --kubeconfig"
  run keadm manifest --force
  status_is 1
  run keadm join --token
  status_is 1
  output_has "flag needs an argument: --token"
  run keadm join -x 1
  status_is 1
  output_has "unknown shorthand flag: 'x' in -x"
  run keadm frob
  status_is 1
  output_has 'unknown command "frob" for "keadm"'
  # nothing happened
  [[ ! -e $KP_SYSROOT/etc/kubeedge && ! -f $KP_STUB_STATE/kubeedge ]]
  # the flags the scripts use are accepted
  run keadm init --kubeedge-version 1.22.0 --advertise-address 1.2.3.4 --kube-config /k --image-repository docker.io/kubeedge --set a=b --set c=d --force
  status_is 0
  run keadm gettoken --kube-config /k
  status_is 0
  run keadm reset cloud --force --kube-config /k
  status_is 0
}

@test "keadm join: edgecore fetches the certificates after it starts; join returns once they exist" {
  KP_FAKE_CERT_DELAY=0.5 run join_ok
  status_is 0
  output_has "Install Complete!"
  for f in ca/rootCA.crt certs/server.crt certs/server.key; do [[ -s $KP_SYSROOT/etc/kubeedge/$f ]]; done
}

@test "keadm join: certificates that never come fail join after its wait, with the poll's error" {
  KP_FAKE_CLOUD_NO_CERTS=1 KP_FAKE_JOIN_CERT_WAIT=1 run join_ok
  status_is 1
  output_has "timed out waiting for the condition"
  [[ ! -e $KP_SYSROOT/etc/kubeedge/certs/server.crt ]]
  # what join did before it failed stays: config, unit, binary, a started edgecore
  [[ -f $(CFG) && -f $KP_SYSROOT/etc/systemd/system/edgecore.service && -x $KP_SYSROOT/usr/local/bin/edgecore ]]
}

@test "edgecore: running with a token, it writes its config back from memory with the token cleared (edits meanwhile are lost)" {
  KP_FAKE_TOKEN_CLEANUP_DELAY=1 run join_ok
  status_is 0
  grep -q '^    token: aaaa' "$(CFG)"
  printf '# an edit made while edgecore runs\n' >>"$(CFG)"
  for _ in $(seq 1 60); do [[ -f $KP_STUB_STATE/edgecore-token-cleaned ]] && break; sleep 0.1; done
  [[ -f $KP_STUB_STATE/edgecore-token-cleaned ]]
  grep -qx '    token: ""' "$(CFG)"
  file_lacks "$(CFG)" "an edit made while edgecore runs"
}

@test "edgecore: stopped before it cleans the token, it writes nothing; restarted with its certificates, it writes nothing" {
  KP_FAKE_TOKEN_CLEANUP_DELAY=1 run join_ok
  status_is 0
  systemctl stop edgecore
  printf '# our edit\n' >>"$(CFG)"
  systemctl start edgecore
  sleep 1.5
  [[ ! -f $KP_STUB_STATE/edgecore-token-cleaned ]]
  grep -qx '# our edit' "$(CFG)"
}

@test "keadm reset edge: removes the unit and /etc/kubeedge, keeps the binary, stops at the first missing directory" {
  run join_ok
  status_is 0
  mkdir -p "$KP_SYSROOT/var/lib/kubeedge" "$KP_SYSROOT/var/lib/edged"
  run keadm reset edge --force
  status_is 0
  [[ ! -e $KP_SYSROOT/etc/kubeedge && ! -e $KP_SYSROOT/etc/systemd/system/edgecore.service ]]
  [[ ! -f $KP_STUB_STATE/svc-edgecore-active ]]
  [[ -x $KP_SYSROOT/usr/local/bin/edgecore ]]
  # /var/log/kubeedge did not exist: CleanDirectories returned there
  [[ -d $KP_SYSROOT/var/lib/kubeedge && -d $KP_SYSROOT/var/lib/edged ]]
}

@test "kubectl: an unknown verb or resource type fails as kubectl does; object states come from the stub state" {
  run kubectl --kubeconfig /k frobnicate pods
  status_is 1
  output_has 'error: unknown command "frobnicate" for "kubectl"'
  run kubectl --kubeconfig /k -n kubeedge get widgets
  status_is 1
  output_has "the server doesn't have a resource type \"widgets\""
  run kubectl --kubeconfig /k -n kubeedge delete widget/x
  status_is 1
  run kubectl --kubeconfig /k -n kube-system get pods -l k8s-app=metrics-server -o 'jsonpath={.items[*].status.phase}'
  [[ $output == Running ]]
  KP_FAKE_POD_PHASE=Pending run kubectl --kubeconfig /k -n kube-system get pods -l k8s-app=metrics-server -o 'jsonpath={.items[*].status.phase}'
  [[ $output == Pending ]]
  printf False >"$KP_STUB_STATE/fake-apiservice-available"
  run kubectl --kubeconfig /k get apiservice v1beta1.metrics.k8s.io -o 'jsonpath={.status.conditions[?(@.type=="Available")].status}'
  [[ $output == False ]]
  run kubectl --kubeconfig /k get --raw /readyz
  status_is 1
  output_has "connection to the server 127.0.0.1:6443 was refused"
  run kubectl --kubeconfig /k -n kubeedge get deployment cloudcore
  status_is 1
  output_has 'deployments.apps "cloudcore" not found'
}

@test "timeout: runs its command and kills it after the duration (124); TCP probes stay emulated" {
  run timeout 5 bash -c 'echo ran; exit 3'
  status_is 3
  output_has ran
  start=$SECONDS
  run timeout 1 sleep 10
  status_is 124
  ((SECONDS - start < 5))
  run timeout 5 bash -c 'exec 3<>/dev/tcp/192.0.2.1/10000'
  status_is 0
  KP_FAKE_UNREACHABLE=10000 run timeout 5 bash -c 'exec 3<>/dev/tcp/192.0.2.1/10000'
  status_is 1
}
