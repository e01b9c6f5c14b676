#!/usr/bin/env bash
# install.sh (edge): offline join of this host to a KubeEdge {{versions.kubeedge}} cloud, bundle {{bundleName}}.
{{> shell-lib}}
{{> yaml-tool}}

readonly KUBEEDGE_VERSION={{sq versions.kubeedge}}
readonly KUBEEDGE_VERSION_BARE={{sq versions.kubeedgeBare}}
readonly KUBEEDGE_IMAGE_REPOSITORY={{sq kubeedgeImageRepository}}
readonly ALL_IMAGES=({{#each images.all}}{{sq this}} {{/each}})
readonly PLATFORM={{sq platform}}
readonly RUNTIME_BUNDLED={{#if runtimeBundled}}1{{else}}0{{/if}}
readonly PORT_CLOUDHUB_HTTPS={{ports.cloudHubHttps}} PORT_TUNNEL={{ports.tunnel}}
readonly PORT_CLOUDHUB={{ports.cloudHubWebsocket}}
# edgecore settings keadm join is given (and summary prints)
readonly EDGE_META_SERVER={{sq edge.metaServer}} EDGE_CLUSTER_DNS={{sq edge.clusterDNS}}
readonly EDGE_CLUSTER_DOMAIN={{sq edge.clusterDomain}} EDGE_KUBELET_ADDRESS={{sq edge.kubeletAddress}}

BUNDLE_DIR=$SCRIPT_DIR
readonly BUNDLE_DIR
readonly BUNDLE_KEADM="$BUNDLE_DIR/{{files.keadm}}"
readonly BUNDLE_IMAGES="$BUNDLE_DIR/{{files.imagesArchive}}"
# The bundled pause image: sandbox image of the bundled containerd, or tagged for an existing one.
readonly SANDBOX_IMAGE={{sq images.pause}}
# The runtime installed on hosts without one (install_runtime); all empty when the bundle carries
# none (RUNTIME_BUNDLED=0: containerd publishes no build for this arch).
{{#if runtimeBundled}}
readonly BUNDLE_CONTAINERD="$BUNDLE_DIR/{{files.containerdTarball}}"
readonly BUNDLE_RUNC="$BUNDLE_DIR/{{files.runc}}"
readonly BUNDLE_CNI="$BUNDLE_DIR/{{files.cniPluginsTarball}}"
readonly CONTAINERD_VERSION={{sq versions.containerd}} RUNC_VERSION={{sq versions.runc}} CNI_PLUGINS_VERSION={{sq versions.cniPlugins}}
{{else}}
readonly BUNDLE_CONTAINERD="" BUNDLE_RUNC="" BUNDLE_CNI=""
readonly CONTAINERD_VERSION="" RUNC_VERSION="" CNI_PLUGINS_VERSION=""
{{/if}}
CNI_CONF_DIR=$(sys /etc/cni/net.d)
RUNTIME_FILES="$KP_STATE_DIR/edge-runtime-files"
readonly CNI_CONF_DIR RUNTIME_FILES

KEADM_BIN=$(sys /usr/local/bin/keadm)
EDGECORE_BIN=$(sys /usr/local/bin/edgecore)
KUBEEDGE_DIR=$(sys /etc/kubeedge)
EDGECORE_CONFIG=$(sys /etc/kubeedge/config/edgecore.yaml)
CONTAINERD_SOCK=$(sys /run/containerd/containerd.sock)
CONTAINERD_CONFIG=$(sys /etc/containerd/config.toml)
EDGE_STATE="$KP_STATE_DIR/edge.env"
readonly KEADM_BIN EDGECORE_BIN KUBEEDGE_DIR EDGECORE_CONFIG CONTAINERD_SOCK CONTAINERD_CONFIG EDGE_STATE

# usage: prints the help text.
usage() {
  cat <<USAGE
Usage: $SCRIPT_NAME --cloud IP:PORT --token TOKEN [--node-name NAME] [--cgroup-driver systemd|cgroupfs]
                    [--check-cloud] [--timeout SECONDS] [--dry-run] [--log-file PATH] [--help]

Joins this host to the KubeEdge cloud without network access beyond the cloud node:
  1. container runtime: an existing containerd is used as it is (its cgroup driver is detected);
     without one, the containerd/runc/CNI plugins of the bundle are installed (not on arm bundles)
  2. the bundle's images are imported into containerd (namespace k8s.io): keadm join pulls nothing
  3. keadm join (KubeEdge $KUBEEDGE_VERSION)
  4. edgecore.yaml: edgeStream to the cloud, metaServer, EdgeMesh DNS, kubelet on 127.0.0.1 only
     (scripts/configure-edgecore.sh: edgecore stopped, backup, structured edit, started, read back twice;
     the join token is cleared once edgecore has its certificates)

  --cloud IP:PORT          CloudHub address of the cloud node, e.g. 192.168.1.10:$PORT_CLOUDHUB  [required]
  --token TOKEN            output of 'keadm gettoken' on the cloud node                       [required]
  --node-name NAME         node name in Kubernetes (default: the host name, lower case)
  --cgroup-driver DRIVER   systemd or cgroupfs. With an existing containerd it must match it (default:
                           detected); for a containerd installed from the bundle the default is systemd
  --check-cloud            only probe the cloud node (TCP to CloudHub $PORT_CLOUDHUB_HTTPS/its --cloud port and the
                           tunnel port $PORT_TUNNEL), print the result and exit; installs nothing (--token not needed)
  --timeout SECONDS        upper bound of each wait (default 300)
  --dry-run                check and print every command that would change the host; change nothing.
                           Opens no connection: the cloud probes are printed, not made
                           (run --check-cloud for them), and containerd is not asked
  --log-file PATH          log file (default /var/log/kubeprepare-install.log)
  --help                   show this help

Re-running is safe: a node already joined with this version is only re-checked.
Exit status: 0 ok, 1 a step failed, 2 bad usage, 3 preflight failed, 4 verification failed,
5 a wait timed out.
USAGE
}

CLOUD=""
CLOUD_IP=""
CLOUD_PORT=""
TOKEN=""
NODE_NAME=""
CGROUP_DRIVER=""
CHECK_CLOUD=0
TIMEOUT=300
LOG_PATH=$(sys /var/log/kubeprepare-install.log)

readonly KP_COMMON_OPTS="--timeout --dry-run --log-file"

# parse_args ARGS...: reads the options into CLOUD (CLOUD_IP, CLOUD_PORT), TOKEN, NODE_NAME, CGROUP_DRIVER, CHECK_CLOUD; dies (exit 2) on bad usage.
parse_args() {
  normalize_args "$@"
  set -- "${NORM_ARGS[@]+"${NORM_ARGS[@]}"}"
  while (($#)); do
    case $1 in
      --cloud) need_value "$1" "$#" "${2-}"; CLOUD=$2; shift 2 ;;
      --token) need_value "$1" "$#" "${2-}"; TOKEN=$2; shift 2 ;;
      --node-name) need_value "$1" "$#" "${2-}"; NODE_NAME=$2; shift 2 ;;
      --cgroup-driver) need_value "$1" "$#" "${2-}"; CGROUP_DRIVER=$2; shift 2 ;;
      --check-cloud) CHECK_CLOUD=1; shift ;;
      *) common_arg "$@"; shift "$KP_SHIFT" ;;
    esac
  done
  [[ -n $CLOUD ]] || die_usage "--cloud is required (IP:PORT of CloudHub, e.g. 192.168.1.10:$PORT_CLOUDHUB)"
  [[ -n $TOKEN || $CHECK_CLOUD == 1 ]] || die_usage "--token is required (run 'keadm gettoken' on the cloud node)"
  [[ $CLOUD == *:* ]] || die_usage "--cloud: '$CLOUD' has no port; expected IP:PORT"
  CLOUD_IP=${CLOUD%:*}
  CLOUD_PORT=${CLOUD##*:}
  is_host_ipv4 "$CLOUD_IP" || die_usage "--cloud: '$CLOUD_IP' is not a usable IPv4 address"
  is_port "$CLOUD_PORT" || die_usage "--cloud: '$CLOUD_PORT' is not a TCP port (1-65535)"
  [[ -z $TOKEN && $CHECK_CLOUD == 1 ]] || is_token "$TOKEN" || die_usage "--token: not a KubeEdge token (expected <64 hex>.<JWT> as printed by keadm gettoken)"
  mask_secret "$TOKEN"
  if [[ -z $NODE_NAME ]]; then
    NODE_NAME=$(uname -n | tr '[:upper:]' '[:lower:]')
    is_node_name "$NODE_NAME" || die_usage "the host name '$NODE_NAME' is not a valid node name; give --node-name"
  fi
  is_node_name "$NODE_NAME" || die_usage "--node-name: '$NODE_NAME' is not a valid node name (lower-case RFC 1123)"
  case $CGROUP_DRIVER in
    "" | systemd | cgroupfs) ;;
    *) die_usage "--cgroup-driver: '$CGROUP_DRIVER' must be systemd or cgroupfs" ;;
  esac
}

# tcp_probe HOST PORT: can we open a TCP connection within 5 seconds?
# (HOST and PORT are validated before: an IPv4 address and a number.)
tcp_probe() { timeout 5 bash -c "exec 3<>/dev/tcp/$1/$2" >/dev/null 2>&1; }

# check_cloud_reachable: dies unless CloudHub answers on CLOUD_PORT and PORT_CLOUDHUB_HTTPS; warns when PORT_TUNNEL does not.
check_cloud_reachable() {
  if [[ $DRY_RUN == 1 ]]; then
    _kp_emit DRY-RUN "probe TCP $CLOUD_IP:$CLOUD_PORT (CloudHub), $CLOUD_IP:$PORT_CLOUDHUB_HTTPS (certificates)" \
      "and $CLOUD_IP:$PORT_TUNNEL (CloudStream tunnel); not done in a dry run: $SCRIPT_NAME --check-cloud does it"
    return 0
  fi
  if tcp_probe "$CLOUD_IP" "$CLOUD_PORT"; then
    log "cloud reachable: CloudHub $CLOUD_IP:$CLOUD_PORT"
  else
    die_preflight "cannot connect to CloudHub at $CLOUD_IP:$CLOUD_PORT within 5s. Check that the cloud install" \
      "finished, the address/port are right, and no firewall blocks TCP $CLOUD_PORT (and $PORT_CLOUDHUB_HTTPS, $PORT_TUNNEL) from this host"
  fi
  if ! tcp_probe "$CLOUD_IP" "$PORT_CLOUDHUB_HTTPS"; then
    die_preflight "CloudHub answers on $CLOUD_PORT but not on $PORT_CLOUDHUB_HTTPS (certificate port used by keadm join): open TCP $PORT_CLOUDHUB_HTTPS"
  fi
  if ! tcp_probe "$CLOUD_IP" "$PORT_TUNNEL"; then
    warn "the CloudStream tunnel port $CLOUD_IP:$PORT_TUNNEL is not reachable: the node will join, but" \
      "kubectl logs/exec/top will not work until TCP $PORT_TUNNEL is open"
  fi
}

# ---- existing KubeEdge ----
JOINED=0
# detect_edgecore: sets JOINED=1 when this node already joined CLOUD; dies on another cloud, version or a leftover /etc/kubeedge.
detect_edgecore() {
  local have server
  if [[ -f $EDGECORE_CONFIG ]]; then
    if [[ -x $EDGECORE_BIN ]]; then
      have=$("$EDGECORE_BIN" --version 2>/dev/null | grep -o 'v[0-9][0-9.]*' | head -n 1) || have=""
      if [[ -n $have && $have != "$KUBEEDGE_VERSION" ]]; then
        die_preflight "edgecore $have is installed but this bundle carries $KUBEEDGE_VERSION; refusing to mix" \
          "versions (upgrade with keadm upgrade edge, or run ./uninstall.sh --yes first)"
      fi
    fi
    server=$(yaml_get "$EDGECORE_CONFIG" modules.edgeHub.websocket.server) || server=""
    if [[ -n $server && $server != "$CLOUD" ]]; then
      die_preflight "this node already joined the cloud at $server (not $CLOUD); run ./uninstall.sh --yes first"
    fi
    JOINED=1
    log "this node already joined $CLOUD (found $EDGECORE_CONFIG): keadm join is skipped"
  elif [[ -d $KUBEEDGE_DIR ]] && [[ -n $(ls -A -- "$KUBEEDGE_DIR" 2>/dev/null) ]]; then
    die_preflight "$KUBEEDGE_DIR is not empty but holds no edgecore config (a failed earlier join?);" \
      "keadm join needs it empty: run ./uninstall.sh --yes (keadm reset edge) first"
  fi
}

# disk_steps: prints the install steps still to run, whose disk needs check_disk adds up (disk.tsv).
disk_steps() {
  printf 'images '
  [[ $JOINED == 1 ]] || printf 'join '
  [[ $RUNTIME != none ]] || printf 'runtime'
}

# ---- container runtime ----
RUNTIME=none # existing | ours | none
CTR=()
# containerd_bin: prints the path of the host's containerd binary; status 1 when there is none.
containerd_bin() {
  local c
  for c in "$(sys /usr/local/bin/containerd)" "$(sys /usr/bin/containerd)"; do
    [[ -x $c ]] && { printf '%s' "$c"; return 0; }
  done
  [[ -z $KP_SYSROOT ]] && command -v containerd 2>/dev/null && return 0
  return 1
}
# config_driver: prints the cgroup driver of the containerd config, or nothing without a config.
config_driver() { # cgroup driver of the containerd config, or nothing without a config
  [[ -f $CONTAINERD_CONFIG ]] || return 0
  if grep -Eq '^[[:space:]]*SystemdCgroup[[:space:]]*=[[:space:]]*true' "$CONTAINERD_CONFIG"; then
    printf systemd
  else
    printf cgroupfs
  fi
}

# detect_runtime: sets RUNTIME (existing, ours or none) and CGROUP_DRIVER; dies when the runtime cannot serve edgecore.
detect_runtime() {
  local detected mark
  mark=$(state_get "$EDGE_STATE" RUNTIME_INSTALLED_BY)
  if [[ $mark == kubeprepare ]]; then
    RUNTIME=ours
  elif [[ $mark == kubeprepare-incomplete ]]; then
    log "an earlier run stopped while it installed the bundled containerd: installing it again"
  elif [[ -S $CONTAINERD_SOCK ]] || containerd_bin >/dev/null; then
    RUNTIME=existing
  fi
  if [[ $RUNTIME == none ]]; then
    if [[ $RUNTIME_BUNDLED == 0 ]]; then
      die_preflight "no containerd on this host and this $BUNDLE_ARCH bundle carries none (containerd publishes no" \
        "$BUNDLE_ARCH build): install your distribution's containerd (e.g. apt-get install containerd), then re-run"
    fi
    CGROUP_DRIVER=${CGROUP_DRIVER:-systemd}
    log "no container runtime found: the bundled containerd will be installed (cgroup driver $CGROUP_DRIVER)"
    return 0
  fi
  if [[ -f $CONTAINERD_CONFIG ]] && grep -Eq '^[[:space:]]*disabled_plugins[[:space:]]*=.*"(io\.containerd\.grpc\.v1\.)?cri"' "$CONTAINERD_CONFIG"; then
    die_preflight "the existing containerd has its CRI plugin disabled ($CONTAINERD_CONFIG: disabled_plugins);" \
      "edgecore needs CRI. Remove \"cri\" from disabled_plugins, restart containerd, and re-run"
  fi
  detected=$(config_driver)
  detected=${detected:-cgroupfs}
  if [[ -n $CGROUP_DRIVER && $CGROUP_DRIVER != "$detected" ]]; then
    die_preflight "--cgroup-driver $CGROUP_DRIVER does not match the existing containerd (SystemdCgroup ->" \
      "$detected in $CONTAINERD_CONFIG); pods would fail. Drop --cgroup-driver or reconfigure containerd"
  fi
  CGROUP_DRIVER=$detected
  log "using the $( [[ $RUNTIME == ours ]] && printf 'containerd installed earlier by KubePrepare' || printf 'existing containerd')" \
    "as it is (cgroup driver $CGROUP_DRIVER)"
}

# install_runtime: installs the bundled containerd, runc and CNI plugins when the host has no runtime
# (RUNTIME=none); dies when this bundle carries none. Marks the runtime ours (edge.env) and starts it.
install_runtime() {
  [[ $RUNTIME == none ]] || return 0
  [[ $RUNTIME_BUNDLED == 1 ]] || die_preflight "no container runtime and none in this bundle"
  log "== installing containerd $CONTAINERD_VERSION, runc $RUNC_VERSION, CNI plugins $CNI_PLUGINS_VERSION =="
  runtime_mark_files
  runtime_extract
  runtime_write_config
  runtime_write_unit
  if ((RUNTIME_CNI_CONF)); then
    runtime_write_cni_conf
  fi
  runtime_start
}

# runtime_mark_files: writes the list of every file the bundled runtime installs ($RUNTIME_FILES) and
# the mark kubeprepare-incomplete; sets RUNTIME_CNI_CONF=1 when the host has no CNI network config.
RUNTIME_CNI_CONF=0
runtime_mark_files() {
  local files=() f
  while IFS= read -r f; do
    [[ $f == */ ]] || files+=("/usr/local/${f#./}")
  done < <(tar -tzf "$BUNDLE_CONTAINERD")
  files+=(/usr/local/sbin/runc)
  while IFS= read -r f; do
    [[ $f == */ || $f == . || $f == ./ ]] || files+=("/opt/cni/bin/${f#./}")
  done < <(tar -tzf "$BUNDLE_CNI")
  files+=(/etc/containerd/config.toml /etc/systemd/system/containerd.service)
  # Without a CNI network the kubelet in edgecore reports the node NotReady.
  if [[ -z $(find "$CNI_CONF_DIR" -maxdepth 1 \( -name '*.conf' -o -name '*.conflist' \) 2>/dev/null) ]]; then
    RUNTIME_CNI_CONF=1
    files+=(/etc/cni/net.d/10-kubeprepare-bridge.conflist)
  fi
  # The file list and the mark "kubeprepare-incomplete" are written before anything else: a run that
  # stops halfway is then known as ours, the next run installs the runtime again (detect_runtime),
  # and uninstall.sh removes what was written. The mark becomes "kubeprepare" once all is in place
  # (runtime_start).
  printf '%s\n' "${files[@]}" | sort -u | write_file "$RUNTIME_FILES" 0600
  [[ $DRY_RUN == 1 ]] || state_put "$EDGE_STATE" RUNTIME_INSTALLED_BY kubeprepare-incomplete
}

# runtime_extract: unpacks containerd into /usr/local, installs runc, unpacks the CNI plugins into /opt/cni/bin.
runtime_extract() {
  local prefix
  prefix=$(sys /usr/local)
  run mkdir -p -- "$prefix"
  run tar -C "$prefix" -xzf "$BUNDLE_CONTAINERD"
  install_file "$BUNDLE_RUNC" "$(sys /usr/local/sbin/runc)" 0755
  run mkdir -p -- "$(sys /opt/cni/bin)"
  run tar -C "$(sys /opt/cni/bin)" -xzf "$BUNDLE_CNI"
}

# runtime_write_config: writes $CONTAINERD_CONFIG: containerd's own defaults, with the runc cgroup
# driver keadm join is given and the bundled pause image as sandbox image (edgecore starts pod
# sandboxes before any pull); dies when the cgroup driver could not be set.
runtime_write_config() {
  if [[ $DRY_RUN == 1 ]]; then
    _kp_emit DRY-RUN "containerd config default > $CONTAINERD_CONFIG (SystemdCgroup for $CGROUP_DRIVER, sandbox $SANDBOX_IMAGE)"
    return 0
  fi
  local default_cfg want=false
  default_cfg=$("$(sys /usr/local/bin/containerd)" config default)
  [[ $CGROUP_DRIVER == systemd ]] && want=true
  local edits=(-e "s/^([[:space:]]*SystemdCgroup[[:space:]]*=[[:space:]]*).*/\\1$want/")
  if [[ -n $SANDBOX_IMAGE ]]; then
    edits+=(-e "s#^([[:space:]]*sandbox_image[[:space:]]*=[[:space:]]*).*#\\1\"$SANDBOX_IMAGE\"#"
      -e "s#^([[:space:]]*sandbox[[:space:]]*=[[:space:]]*).*#\\1'$SANDBOX_IMAGE'#")
  fi
  printf '%s\n' "$default_cfg" | sed -E "${edits[@]}" | write_file "$CONTAINERD_CONFIG" 0644
  [[ $(config_driver) == "$CGROUP_DRIVER" ]] ||
    die "could not set the cgroup driver $CGROUP_DRIVER in $CONTAINERD_CONFIG (no SystemdCgroup key in containerd's default config)"
}

# runtime_write_unit: writes the systemd unit containerd.service of the bundled containerd.
runtime_write_unit() {
  write_file "$(sys /etc/systemd/system/containerd.service)" 0644 <<UNIT
# Installed by KubePrepare ($BUNDLE_NAME); removed by its uninstall.sh.
[Unit]
Description=containerd container runtime (KubePrepare)
Documentation=https://containerd.io
After=network.target local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdj=-999

[Install]
WantedBy=multi-user.target
UNIT
}

# runtime_write_cni_conf: writes the bridge network 10-kubeprepare-bridge.conflist into $CNI_CONF_DIR.
runtime_write_cni_conf() {
  write_file "$CNI_CONF_DIR/10-kubeprepare-bridge.conflist" 0644 <<'CNI'
{
  "cniVersion": "1.0.0",
  "name": "kubeprepare-bridge",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "promiscMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "10.88.0.0/16" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "loopback" }
  ]
}
CNI
}

# runtime_start: marks the runtime ours ("kubeprepare", once all is in place), enables and starts it.
runtime_start() {
  [[ $DRY_RUN == 1 ]] || state_put "$EDGE_STATE" RUNTIME_INSTALLED_BY kubeprepare
  run systemctl daemon-reload
  run systemctl enable --now containerd
  RUNTIME=ours
}

# start_runtime: starts containerd when its socket is missing, waits for it; sets CTR (the ctr command line).
start_runtime() {
  if [[ ! -S $CONTAINERD_SOCK ]]; then
    log "containerd is installed but its socket $CONTAINERD_SOCK is missing: starting it"
    run systemctl start containerd
  fi
  wait_for "$TIMEOUT" "the containerd socket $CONTAINERD_SOCK" test -S "$CONTAINERD_SOCK"
  if [[ -x $(sys /usr/local/bin/ctr) ]]; then
    CTR=("$(sys /usr/local/bin/ctr)")
  elif command -v ctr >/dev/null 2>&1; then
    CTR=(ctr)
  elif [[ $DRY_RUN == 1 ]]; then
    CTR=(ctr)
  else
    die_preflight "the ctr command of containerd was not found (needed to import the images)"
  fi
  CTR+=(--address "$CONTAINERD_SOCK" -n k8s.io)
}

# import_images: imports the bundled images containerd (k8s.io) does not have yet, checks them and pins them all.
import_images() {
  log "== images =="
  if [[ $DRY_RUN == 1 ]]; then
    dry_read "the images in containerd (k8s.io)"
    run "${CTR[@]}" images import --platform "$PLATFORM" "$BUNDLE_IMAGES"
    _kp_emit DRY-RUN "(the import is skipped when all ${#ALL_IMAGES[@]} bundled images are there)"
  else
    import_missing_images
  fi
  # As K3s does for its agent/images imports (labelImages): edged's image GC must never remove them.
  pin_images "${CTR[@]}" -- "${ALL_IMAGES[@]}"
}

# import_missing_images: imports the bundle's images unless containerd (k8s.io) has them all, then
# checks that each one is there.
import_missing_images() {
  local present ref missing=()
  present=$("${CTR[@]}" images ls -q 2>/dev/null) || present=""
  for ref in "${ALL_IMAGES[@]}"; do
    grep -qxF -- "$ref" <<<"$present" || missing+=("$ref")
  done
  if ((${#missing[@]} == 0)); then
    log "all ${#ALL_IMAGES[@]} bundled images are already in containerd (k8s.io)"
    return 0
  fi
  log "importing ${#ALL_IMAGES[@]} images ($PLATFORM) from $BUNDLE_IMAGES; missing now: ${missing[*]}"
  run "${CTR[@]}" images import --platform "$PLATFORM" "$BUNDLE_IMAGES"
  present=$("${CTR[@]}" images ls -q)
  for ref in "${ALL_IMAGES[@]}"; do
    grep -qxF -- "$ref" <<<"$present" || die_verify "image $ref is still missing after the import"
  done
  log "all ${#ALL_IMAGES[@]} images imported"
}

# normalize_ref REF: prints REF in containerd's full form (docker.io/library/..., :latest).
# An existing containerd starts pod sandboxes (keadm join's own, then every pod's) from the sandbox
# image of ITS config (sandbox_image / sandbox; 1.7 defaults to registry.k8s.io/pause:3.8). With no
# network it must already be in the image store: when it is missing, the bundled pause image is tagged
# with that name. The bundled containerd is configured with the bundled pause image instead.
normalize_ref() {
  local r=$1 first=${1%%/*}
  if [[ $r != */* ]]; then
    r="docker.io/library/$r"
  elif [[ $first != *.* && $first != *:* && $first != localhost ]]; then
    r="docker.io/$r"
  fi
  [[ ${r##*/} == *:* || $r == *@* ]] || r="$r:latest"
  printf '%s' "$r"
}
# runtime_sandbox_image: prints the sandbox image of the existing containerd's config (containerd config dump), or nothing.
runtime_sandbox_image() {
  local bin dump
  bin=$(containerd_bin) || return 0
  dump=$("$bin" config dump 2>/dev/null) || return 0
  sed -nE "s/^[[:space:]]*(sandbox_image|sandbox)[[:space:]]*=[[:space:]]*[\"']([^\"']+)[\"'].*/\\2/p" <<<"$dump" | head -n 1
}
# ensure_sandbox_image: tags the bundled pause image as the existing containerd's sandbox image when that one is missing.
ensure_sandbox_image() {
  [[ -n $SANDBOX_IMAGE && $RUNTIME == existing ]] || return 0
  local want present
  want=$(runtime_sandbox_image)
  if [[ -z $want ]]; then
    warn "could not read containerd's sandbox image ('containerd config dump'); if pods stay in" \
      "ContainerCreating, tag $SANDBOX_IMAGE with it: ctr -n k8s.io images tag $SANDBOX_IMAGE <sandbox image>"
    return 0
  fi
  want=$(normalize_ref "$want")
  [[ $want == "$SANDBOX_IMAGE" ]] && return 0
  if [[ $DRY_RUN == 1 ]]; then
    dry_read "whether containerd has its sandbox image $want"
    _kp_emit DRY-RUN "unless it has: $(quote_cmd "${CTR[@]}" images tag "$SANDBOX_IMAGE" "$want")"
    return 0
  fi
  present=$("${CTR[@]}" images ls -q 2>/dev/null) || present=""
  if grep -qxF -- "$want" <<<"$present"; then
    log "containerd's sandbox image $want is present"
    return 0
  fi
  log "containerd's sandbox image $want is not present (no network here): tagging the bundled $SANDBOX_IMAGE as $want"
  run "${CTR[@]}" images tag "$SANDBOX_IMAGE" "$want"
}

# join: installs keadm and runs keadm join (skipped when already joined); waits for edgecore.yaml.
join() {
  log "== keadm join =="
  install_file "$BUNDLE_KEADM" "$KEADM_BIN" 0755
  if [[ $JOINED == 1 ]]; then
    return 0
  fi
  run "$KEADM_BIN" join \
    --kubeedge-version "$KUBEEDGE_VERSION_BARE" \
    --cloudcore-ipport "$CLOUD" \
    --token "$TOKEN" \
    --edgenode-name "$NODE_NAME" \
    --remote-runtime-endpoint "unix://$CONTAINERD_SOCK" \
    --cgroupdriver "$CGROUP_DRIVER" \
    --image-repository "$KUBEEDGE_IMAGE_REPOSITORY" \
    --set "Modules.Edged.TailoredKubeletConfig.RegisterWithTaints[0].Key=node-role.kubernetes.io/edge,Modules.Edged.TailoredKubeletConfig.RegisterWithTaints[0].Effect=NoSchedule" \
    --set "Modules.EdgeStream.Enable=true,Modules.EdgeStream.TunnelServer=$CLOUD_IP:$PORT_TUNNEL" \
    --set "Modules.MetaManager.MetaServer.Enable=true,Modules.MetaManager.MetaServer.Server=$EDGE_META_SERVER" \
    --set "Modules.Edged.TailoredKubeletConfig.ClusterDNS[0]=$EDGE_CLUSTER_DNS,Modules.Edged.TailoredKubeletConfig.ClusterDomain=$EDGE_CLUSTER_DOMAIN,Modules.Edged.TailoredKubeletConfig.Address=$EDGE_KUBELET_ADDRESS"
  wait_for "$TIMEOUT" "$EDGECORE_CONFIG written by keadm join" test -f "$EDGECORE_CONFIG"
}

# configure_edgecore: runs scripts/configure-edgecore.sh with our --dry-run / --log-file.
configure_edgecore() {
  log "== edgecore configuration =="
  local extra=()
  [[ $DRY_RUN == 1 ]] && extra+=(--dry-run)
  [[ -n $LOG_FILE ]] && extra+=(--log-file "$LOG_FILE")
  if [[ $DRY_RUN == 1 && ! -f $EDGECORE_CONFIG ]]; then
    _kp_emit DRY-RUN "$BUNDLE_DIR/scripts/configure-edgecore.sh --cloud-ip $CLOUD_IP (after keadm join wrote $EDGECORE_CONFIG)"
    return 0
  fi
  "$BUNDLE_DIR/scripts/configure-edgecore.sh" --cloud-ip "$CLOUD_IP" --config "$EDGECORE_CONFIG" \
    --timeout "$TIMEOUT" "${extra[@]+"${extra[@]}"}"
}

# summary: records CLOUD, NODE_NAME, CGROUP_DRIVER in edge.env and prints what was done.
summary() {
  local my_ip=""
  if command -v ip >/dev/null 2>&1; then
    my_ip=$(ip -o route get "$CLOUD_IP" 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "src") { print $(i + 1); exit } }') || my_ip=""
  fi
  if [[ $DRY_RUN == 0 ]]; then
    {
      # keep the other keys; grep finds none when the file holds only these (exit 1 is fine then)
      if [[ -f $EDGE_STATE ]]; then grep -Ev '^(CLOUD|NODE_NAME|CGROUP_DRIVER)=' "$EDGE_STATE" || true; fi
      printf 'CLOUD=%s\nNODE_NAME=%s\nCGROUP_DRIVER=%s\n' "$CLOUD" "$NODE_NAME" "$CGROUP_DRIVER"
    } | sort | write_file "$EDGE_STATE" 0600
  fi
  printf '\nKubePrepare edge install %s (%s)\n' "$([[ $DRY_RUN == 1 ]] && printf 'dry run done' || printf complete)" "$BUNDLE_NAME"
  printf '  node name       %s\n' "$NODE_NAME"
  printf '  cloud           %s\n' "$CLOUD"
  printf '  runtime         containerd (%s), cgroup driver %s\n' "$RUNTIME" "$CGROUP_DRIVER"
  printf '  keadm join      %s\n' "$([[ $JOINED == 1 ]] && printf 'already joined (skipped)' || printf 'done')"
  printf '  edgecore        edgeStream -> %s:%s, metaServer %s, clusterDNS %s, kubelet on %s\n' "$CLOUD_IP" "$PORT_TUNNEL" \
    "$EDGE_META_SERVER" "$EDGE_CLUSTER_DNS" "$EDGE_KUBELET_ADDRESS"
  printf 'On the cloud node, add this node to the stream certificate (kubectl logs/exec):\n'
  printf '  sudo <cloud bundle>/scripts/refresh-stream-cert.sh --add-edge-ip %s\n\n' "${my_ip:-<this node IP>}"
  log "edge install finished"
}

# main ARGS...: runs the install steps in order.
main() {
  parse_args "$@"
  log_init "$LOG_PATH"
  [[ $DRY_RUN == 1 ]] && log "DRY RUN: nothing on this host will be changed"
  log "== preflight =="
  need_root
  check_arch
  need_cmd awk sed grep cmp install mktemp sha256sum tar timeout systemctl uname find
  local f
  for f in "$BUNDLE_KEADM" "$BUNDLE_IMAGES"; do
    [[ -f $f ]] || die_preflight "bundle file missing: $f"
  done
  "$BUNDLE_DIR/verify.sh" --quiet || die_verify "the bundle in $BUNDLE_DIR is damaged (see above); copy it again"
  log "bundle $BUNDLE_NAME verified"
  check_cloud_reachable
  if ((CHECK_CLOUD == 1)); then
    log "--check-cloud: the cloud node answers; nothing was changed"
    return 0
  fi
  detect_edgecore
  detect_runtime
  local steps=()
  read -ra steps <<<"$(disk_steps)"
  check_disk "$BUNDLE_DIR/disk.tsv" "${steps[@]+"${steps[@]}"}"
  install_runtime
  start_runtime
  import_images
  ensure_sandbox_image
  join
  configure_edgecore
  summary
}

main "$@"
