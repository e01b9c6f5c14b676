#!/usr/bin/env bats
# Self-test of the assertion helpers (helpers/common.bash): every negative helper FAILS on a log/file that
# holds what it forbids and passes otherwise; every positive helper fails when what it expects is absent.
# The log lines are written by the stubs' own recorder (kp_record), in the forms the scripts call them.
load helpers/common

setup() {
  kp_stub_env
  . "$KP_STUB_DIR/_lib.sh"
}

# rec ARGS...: one call line, as a stub records it.
rec() { kp_record "$@"; }
KC=(kubectl --kubeconfig /root/etc/rancher/k3s/k3s.yaml)

# a call line for a forbidden pattern, in the form the scripts make it (global options before the verb)
forbidden_line() {
  local pat=$1
  read -ra words <<<"$pat"
  case ${words[0]} in
    kubectl) rec "${KC[@]}" -n kubeedge "${words[@]:1}" some-object ;;
    images) rec ctr --address /root/run/containerd/containerd.sock -n k8s.io "${words[@]}" --platform linux/amd64 /b/images.tar ;;
    *) rec "${words[@]}" some-arg ;;
  esac
}

@test "selftest: called / not_called / count_calls see kubectl verbs behind --kubeconfig and -n" {
  rec "${KC[@]}" -n kubeedge rollout restart deployment cloudcore
  rec "${KC[@]}" apply -f -
  rec "${KC[@]}" --request-timeout=20s -n kube-system get pods
  run called "kubectl rollout restart deployment cloudcore"
  status_is 0
  run called "kubectl apply -f -"
  status_is 0
  run called "kubectl get pods"
  status_is 0
  run not_called "kubectl apply"
  status_is 1
  run not_called "kubectl rollout restart"
  status_is 1
  run not_called "kubectl delete"
  status_is 0
  run called "kubectl delete"
  status_is 1
  [[ $(count_calls "kubectl apply") -eq 1 ]]
  [[ $(count_calls "--kubeconfig") -eq 3 ]]
  [[ $(count_calls "kubectl patch") -eq 0 ]]
}

@test "selftest: refute_mutations fails on every mutating call it lists, passes on reads only" {
  [[ ${#KP_MUTATING_CALLS[@]} -gt 10 ]]
  for pat in "${KP_MUTATING_CALLS[@]}"; do
    : >"$KP_STUB_LOG"
    forbidden_line "$pat"
    run refute_mutations
    [[ $status -eq 1 ]] || { printf 'refute_mutations passed on a log holding "%s":\n' "$pat" >&2; cat "$KP_STUB_LOG" >&2; false; }
  done
  # the real call forms of the scripts
  : >"$KP_STUB_LOG"
  rec k3s ctr -n k8s.io images import --platform linux/amd64 /b/images.tar
  run refute_mutations
  status_is 1
  : >"$KP_STUB_LOG"
  rec "${KC[@]}" -n default label service kubernetes service.edgemesh.kubeedge.io/service-proxy-name= --overwrite
  run refute_mutations
  status_is 1
  # reads only: passes
  : >"$KP_STUB_LOG"
  rec "${KC[@]}" get --raw /readyz
  rec "${KC[@]}" -n kubeedge get deployment cloudcore
  rec ctr --address /s -n k8s.io images ls -q
  rec systemctl is-active --quiet edgecore
  rec iptables -w -t nat -C OUTPUT -p tcp --dport 10350
  rec keadm gettoken --kube-config /k
  rec tar -tzf /b/runtime/containerd.tar.gz
  run refute_mutations
  status_is 0
}

@test "selftest: the kubectl stub's own log line is matched by its verb" {
  PATH="$KP_STUB_DIR:$PATH" kubectl --kubeconfig /x -n kubeedge patch deployment cloudcore -p '{}' >/dev/null 2>&1 || true
  run called "kubectl patch deployment cloudcore"
  status_is 0
  run refute_mutations
  status_is 1
}

@test "selftest: install and tar are recorded (pass-through stubs) and still do their job" {
  printf 'x\n' >"$BATS_TEST_TMPDIR/src"
  PATH="$KP_STUB_DIR:$PATH" install -m 0640 -- "$BATS_TEST_TMPDIR/src" "$BATS_TEST_TMPDIR/dst"
  [[ $(stat -c %a "$BATS_TEST_TMPDIR/dst") == 640 ]]
  run not_called "install -m"
  status_is 1
  mkdir -p "$BATS_TEST_TMPDIR/t/in" "$BATS_TEST_TMPDIR/t/out"
  printf 'y\n' >"$BATS_TEST_TMPDIR/t/in/f"
  PATH="$KP_STUB_DIR:$PATH" tar -C "$BATS_TEST_TMPDIR/t/in" -czf "$BATS_TEST_TMPDIR/t/a.tgz" f
  PATH="$KP_STUB_DIR:$PATH" tar -C "$BATS_TEST_TMPDIR/t/out" -xzf "$BATS_TEST_TMPDIR/t/a.tgz"
  cmp "$BATS_TEST_TMPDIR/t/in/f" "$BATS_TEST_TMPDIR/t/out/f"
  [[ $(count_calls "tar -C") -eq 2 ]]
  run refute_mutations
  status_is 1
}

@test "selftest: file_lacks fails on a file holding the string or a missing file, passes otherwise" {
  f=$BATS_TEST_TMPDIR/f
  printf 'A=1\nRUNTIME_INSTALLED_BY=kubeprepare\n' >"$f"
  run file_lacks "$f" RUNTIME_INSTALLED_BY
  status_is 1
  run file_lacks "$f" '--dport 10350'
  status_is 0
  run file_lacks "$BATS_TEST_TMPDIR/none" x
  status_is 1
}

@test "selftest: status_is and output_has fail on a mismatch" {
  run bash -c 'echo hello; exit 3'
  status_is 3
  output_has hello
  run status_is 0
  [[ $status -eq 1 ]]
  run bash -c 'echo hello; exit 3'
  run output_has goodbye
  [[ $status -eq 1 ]]
}

@test "selftest: no bats test holds a negated command (it can never fail the test: SC2314/SC2315)" {
  command -v shellcheck
  run shellcheck --include=SC2314,SC2315 --severity=style "$KP_REPO"/test/bats/*.bats
  status_is 0
}

@test "selftest: the sandbox (helpers/sandbox.sh) refuses a write outside its directory, allows one inside" {
  sb=$KP_REPO/test/bats/helpers/sandbox.sh
  run "$sb" "$BATS_TEST_TMPDIR" bash -c "touch /etc/kp-sandbox-selftest.$$"
  [[ $status -ne 0 && $status -ne 97 ]]
  output_has "Read-only file system"
  [[ ! -e /etc/kp-sandbox-selftest.$$ ]]
  run "$sb" "$BATS_TEST_TMPDIR" bash -c 'touch "$KP_SANDBOX/inside" && printf "%s" "$KP_SANDBOX"'
  status_is 0
  [[ -f $BATS_TEST_TMPDIR/inside ]]
}

@test "selftest: the sandbox has no network but loopback: a node address has no route, so nothing is sent" {
  sb=$KP_REPO/test/bats/helpers/sandbox.sh
  # route lookups only: no packet is sent whether or not the sandbox holds
  run "$sb" "$BATS_TEST_TMPDIR" ip -4 route get 192.168.10.10
  [[ $status -ne 0 && $status -ne 97 ]]
  output_has "unreachable"
  run "$sb" "$BATS_TEST_TMPDIR" ip -4 route get 127.0.0.1
  status_is 0
  output_has "dev lo"
}

@test "selftest: kp_ctx prints a value of the render context and fails on a key it does not hold" {
  export KP_CONTEXT=$BATS_TEST_TMPDIR/ctx.json
  printf '{"images":{"pause":"docker.io/kubeedge/pause:3.6","cloudcore":""},"unameMachines":["aarch64","arm64"]}' >"$KP_CONTEXT"
  [[ $(kp_ctx images.pause) == docker.io/kubeedge/pause:3.6 ]]
  [[ $(kp_ctx unameMachines) == "aarch64 arm64" ]]
  run kp_ctx images.cloudcore
  status_is 1
  run kp_ctx versions.nothing
  status_is 1
}
