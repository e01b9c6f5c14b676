# Sourced by the kubectl stub: the cloudcore Deployment's strategy and rollouts, as the API server,
# the deployment controller, the scheduler and kubectl do them (docs/upstream.md, "Kubernetes semantics").
# Strategy: what keadm init's --set cloudCore.strategy.type gave (keadm stub) or a patch wrote; without
# one the chart's `strategy: {}` is defaulted by the API server to RollingUpdate (maxSurge 25% -> 1 pod,
# maxUnavailable 25% -> 0). The pod uses the host network, so its ports 10000-10004 are host ports, and
# its affinity keeps it off edge nodes: with KP_FAKE_CLOUD_NODES (default 1) eligible node, the surge
# pod of a RollingUpdate stays Pending and the old pod is never removed; Recreate deletes the old pod
# first. A replaced pod is a new CloudCore that loads the Secret's certificate when it starts: the
# test's fake CloudCore (helpers/fake-cloudcore.bash, PID in $S/fake-cloudcore.pid) is restarted.
strategy() { if [[ -f $S/cloudcore-strategy ]]; then cat "$S/cloudcore-strategy"; else printf RollingUpdate; fi; }
rollout_can_proceed() { [[ $(strategy) == Recreate ]] || ((${KP_FAKE_CLOUD_NODES:-1} > 1)); }
replace_cloudcore_pod() {
  rm -f "$S/cloudcore-rollout-pending"
  if [[ -f $S/fake-cloudcore.pid ]]; then kill "$(cat "$S/fake-cloudcore.pid")" 2>/dev/null || true; fi
}
duration_seconds() { # kubectl --timeout value (Go duration: 90s, 2m, 1h) -> seconds
  local d=$1
  case $d in
    *h) echo $((${d%h} * 3600)) ;; *m) echo $((${d%m} * 60)) ;; *s) echo "${d%s}" ;; *) echo "$d" ;;
  esac
}

# kp_cloudcore_rollout ARGS...: the kubectl verbs on deployment cloudcore (after --kubeconfig and -n are
# taken off): get strategy, patch, rollout restart, rollout status.
kp_cloudcore_rollout() {
  local cmd="$*" ptype body b t a
  case $cmd in
    "get deployment cloudcore -o jsonpath={.spec.strategy.type}")
      [[ -f $S/kubeedge ]] || { echo 'Error from server (NotFound): deployments.apps "cloudcore" not found' >&2; exit 1; }
      strategy ;;
    "patch deployment cloudcore "*)
      [[ -f $S/kubeedge ]] || { echo 'Error from server (NotFound): deployments.apps "cloudcore" not found' >&2; exit 1; }
      ptype=strategic body=""
      while (($#)); do
        case $1 in --type) ptype=$2; shift 2 ;; --type=*) ptype=${1#*=}; shift ;; -p) body=$2; shift 2 ;; -p=*) body=${1#*=}; shift ;; *) shift ;; esac
      done
      b=${body//[[:space:]]/}
      if [[ $b == *'"type":"Recreate"'* ]]; then
        # JSON merge patch keeps the defaulted rollingUpdate unless it is nulled; strategic merge drops it
        # (retainKeys). Validation: rollingUpdate "may not be specified when strategy `type` is 'Recreate'".
        if [[ $ptype == merge && $b != *'"rollingUpdate":null'* ]]; then
          echo "The Deployment \"cloudcore\" is invalid: spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy \`type\` is 'Recreate'" >&2
          exit 1
        fi
        printf Recreate >"$S/cloudcore-strategy"
        [[ -f $S/cloudcore-rollout-pending ]] && replace_cloudcore_pod
      fi
      echo "deployment.apps/cloudcore patched" ;;
    "rollout restart deployment cloudcore" | "rollout restart deployment/cloudcore")
      touch "$S/cloudcore-rollout-pending"
      rollout_can_proceed && replace_cloudcore_pod
      echo "deployment.apps/cloudcore restarted" ;;
    "rollout status deployment/cloudcore"*)
      t=0
      for a in "$@"; do [[ $a == --timeout=* ]] && t=$(duration_seconds "${a#--timeout=}"); done
      if [[ -f $S/cloudcore-rollout-pending ]]; then
        ((t > 0)) || { echo "kubectl stub: rollout status without --timeout would wait forever here" >&2; exit 1; }
        printf 'Waiting for deployment "cloudcore" rollout to finish: 1 old replicas are pending termination... (Warning: 0/%s nodes are available: 1 node(s) didn'"'"'t have free ports for the requested pod ports.)\n' "${KP_FAKE_CLOUD_NODES:-1}"
        sleep "$t"
        echo "error: timed out waiting for the condition" >&2
        exit 1
      fi
      printf 'deployment "cloudcore" successfully rolled out\n' ;;
  esac
}
