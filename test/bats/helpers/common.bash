# Shared setup for the bats suite. Each test gets:
#   KP_SYSROOT      a fresh fake root the scripts install into (TEST-ONLY prefix of /etc, /usr/local...)
#   KP_STUB_DIR     test/bats/stubs first in PATH (k3s, kubectl, keadm, systemctl, iptables, ctr...)
#   KP_STUB_LOG     every stub call, one line each: assert on it with called/not_called/count_calls
#   KP_STUB_STATE   what the stubs emulate (k3s running, images imported, secrets...)
#   BUNDLE          a private copy of a rendered fake bundle (cloud or edge) for the host arch
KP_REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
export KP_REPO

kp_host_arch() {
  case $(/usr/bin/env uname -m) in
    aarch64 | arm64) echo arm64 ;;
    armv7l | armv8l | armhf) echo arm ;;
    *) echo amd64 ;;
  esac
}

# kp_bundle SIDE [ARCH]: renders (once per bats run) and prints the path of a pristine bundle.
kp_bundle() {
  local side=$1 arch=${2:-$(kp_host_arch)}
  local dir=${BATS_RUN_TMPDIR:-$BATS_FILE_TMPDIR}/bundle-$side-$arch
  if [[ ! -f $dir/SHA256SUMS ]]; then
    (cd "$KP_REPO" && node --import tsx test/bats/helpers/render-bundle.ts "$side" "$arch" "$dir" >"$dir.context.json") || return 1
  fi
  printf '%s' "$dir"
}

# kp_ctx PATH: a value of the render context the current bundle was rendered with (the real one:
# buildRenderContext over manifests/versions.yaml), e.g. `kp_ctx images.pause`, `kp_ctx versions.k3s`.
kp_ctx() {
  node -e 'let v = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    for (const k of process.argv[2].split(".")) v = v?.[k];
    if (v === undefined || v === "") { console.error(`kp_ctx: ${process.argv[2]} is not in the render context`); process.exit(1); }
    process.stdout.write(Array.isArray(v) ? v.join(" ") : String(v));' "${KP_CONTEXT:?kp_setup sets KP_CONTEXT}" "$1"
}

# kp_setup SIDE [ARCH]: per-test environment and a private bundle copy in $BUNDLE.
# KP_REAL_BUNDLE_CLOUD / KP_REAL_BUNDLE_EDGE (set by test/payload/bats-real-bundle.test.ts): the unpacked
# top directory of a bundle the product really built (its render context in <dir>.context.json); the
# tests then run on those scripts instead of a rendered fake bundle, with uname -m faked to its arch.
# kp_require_sandbox: the suite runs only inside helpers/sandbox.sh (npm test starts it so), checked on
# what the sandbox gives, not on a variable: a write outside the test root fails, and no route leads off
# this machine. A run outside it fails every test instead of touching the host.
kp_require_sandbox() {
  local probe=$KP_REPO/.kp-sandbox-probe.$$
  if ( : >"$probe" ) 2>/dev/null; then
    rm -f "$probe"
    echo "kp_setup: not in the sandbox ($KP_REPO is writable): run the suite through test/bats/helpers/sandbox.sh, as npm test does" >&2
    return 1
  fi
  if ip -4 route show 2>/dev/null | grep -q .; then
    echo "kp_setup: not in the sandbox (this network namespace has routes): run it through test/bats/helpers/sandbox.sh" >&2
    return 1
  fi
}
# kp_stub_env: the stubs' world of one test: a fake root (KP_SYSROOT), the stubs (KP_STUB_DIR), an
# empty call log (KP_STUB_LOG) and the stubs' state (KP_STUB_STATE). PATH is the caller's choice.
kp_stub_env() {
  export KP_SYSROOT=$BATS_TEST_TMPDIR/root
  export KP_STUB_DIR=$KP_REPO/test/bats/stubs
  export KP_STUB_LOG=$BATS_TEST_TMPDIR/calls.log
  export KP_STUB_STATE=$BATS_TEST_TMPDIR/state
  mkdir -p "$KP_SYSROOT" "$KP_STUB_STATE"
  : >"$KP_STUB_LOG"
}
kp_setup() {
  local side=$1 arch=${2:-} src real_var
  kp_require_sandbox
  real_var=KP_REAL_BUNDLE_${side^^}
  if [[ -n ${!real_var:-} && -z $arch ]]; then
    src=${!real_var}
    KP_FAKE_UNAME_M=$(KP_CONTEXT=$src.context.json kp_ctx unameMachines | cut -d' ' -f1)
    export KP_FAKE_UNAME_M
  else
    src=$(kp_bundle "$side" $arch)
  fi
  export BUNDLE=$BATS_TEST_TMPDIR/bundle
  export KP_CONTEXT=$src.context.json
  rm -rf "$BUNDLE"
  cp -a "$src" "$BUNDLE"
  kp_stub_env
  export KP_SKIP_ROOT_CHECK=1
  export KP_POLL_INTERVAL=0
  export PATH="$KP_STUB_DIR:$PATH"
  # the images the stub importers "import": the bundle's list
  KP_FAKE_IMAGES=$(node -e 'const i = require(process.argv[1]).images; console.log((Array.isArray(i) ? i : i.list.map((x) => x.ref)).join(" "))' "$BUNDLE/bundle.json")
  export KP_FAKE_IMAGES
  export KP_FAKE_EDGECORE_YAML=$KP_REPO/test/fixtures/payload/edgecore-v1.22.yaml
}

# Assertions on the stub call log (fixed-string match on one line). A line matches when it contains the
# pattern as logged, or once the global options that sit between a command and its verb are dropped
# (kubectl --kubeconfig P / --request-timeout T / -n NS, ctr --address A / -n NS), so that
# "kubectl apply" matches "kubectl --kubeconfig /x -n kubeedge apply -f -".
# kp_calls_matching PATTERN: prints the matching lines of the call log, as logged.
kp_calls_matching() {
  awk -v p="$1" '
    function norm(   i, w, out, skip) {
      if ($1 != "kubectl" && $1 != "ctr" && !($1 == "k3s" && ($2 == "kubectl" || $2 == "ctr"))) return $0
      out = ""
      for (i = 1; i <= NF; i++) {
        w = $i
        if (skip) { skip = 0; continue }
        if (w == "--kubeconfig" || w == "--request-timeout" || w == "-n" || w == "--namespace" || w == "--address") { skip = 1; continue }
        if (w ~ /^--(kubeconfig|request-timeout|namespace|address)=/) continue
        out = out (out == "" ? "" : " ") w
      }
      return out
    }
    index($0, p) || index(norm(), p)
  ' "$KP_STUB_LOG"
}
called() {
  [[ -n $(kp_calls_matching "$1") ]] || {
    printf 'expected a call matching: %s\ncalls:\n' "$1" >&2
    cat "$KP_STUB_LOG" >&2
    return 1
  }
}
not_called() {
  local hits
  hits=$(kp_calls_matching "$1")
  if [[ -n $hits ]]; then
    printf '%s\n^ unexpected call(s) matching: %s\n' "$hits" "$1" >&2
    return 1
  fi
}
count_calls() { kp_calls_matching "$1" | wc -l | tr -d ' '; }
# file_lacks FILE STRING: FILE exists and holds no line containing STRING (fixed string). Use it, not
# `! grep ...`: bats runs a test with errexit, which a `!`-negated command never triggers (SC2314).
file_lacks() {
  [[ -f $1 ]] || { printf 'file_lacks: no file %s\n' "$1" >&2; return 1; }
  if grep -nF -- "$2" "$1" >&2; then
    printf '^ %s holds what it must not: %s\n' "$1" "$2" >&2
    return 1
  fi
}
reset_calls() { : >"$KP_STUB_LOG"; }

# Run output assertions (bats' run sets $status and $output).
status_is() {
  [[ $status -eq $1 ]] || {
    printf 'expected exit status %s, got %s; output:\n%s\n' "$1" "$status" "$output" >&2
    return 1
  }
}
output_has() {
  [[ $output == *"$1"* ]] || {
    printf 'expected output to contain: %s\noutput:\n%s\n' "$1" "$output" >&2
    return 1
  }
}
# A listing of every file under the fake root (for "nothing changed" checks).
tree_of() { (cd "$KP_SYSROOT" && find . -print0 | sort -z | xargs -0 -r stat -c '%n %s %Y' 2>/dev/null); }

# Mutating calls no --dry-run may make.
KP_MUTATING_CALLS=("keadm init" "keadm join" "keadm reset" "k3s-install.sh" "kubectl apply" "kubectl delete"
  "kubectl label" "kubectl patch" "kubectl rollout restart" "iptables -w -t nat -A" "iptables -w -t nat -D"
  "images import" "systemctl start" "systemctl restart" "systemctl enable" "systemctl disable" "systemctl daemon-reload"
  "netfilter-persistent" "k3s-uninstall.sh" "install -m" "tar -C")
refute_mutations() {
  local pat
  for pat in "${KP_MUTATING_CALLS[@]}"; do
    not_called "$pat" || return 1
  done
}
