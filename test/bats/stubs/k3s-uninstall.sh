#!/usr/bin/env bash
set -euo pipefail
. "$(dirname "$0")/_lib.sh"
kp_record k3s-uninstall.sh "$@"
R=${KP_SYSROOT:?}
rm -rf "$R/etc/rancher" "$R/var/lib/rancher" "$R/usr/local/bin/k3s" "$R/usr/local/bin/k3s-uninstall.sh" "$R/etc/systemd/system/k3s.service"
rm -f "$KP_STUB_STATE/k3s-running" "$KP_STUB_STATE/svc-k3s-active" "$KP_STUB_STATE/kubeedge"
