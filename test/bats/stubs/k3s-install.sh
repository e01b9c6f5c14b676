#!/usr/bin/env bash
# Stand-in for K3s's install.sh (INSTALL_K3S_SKIP_DOWNLOAD=true): records its environment, writes
# what the real one leaves behind (kubeconfig, unit, uninstall script) and a real K3s-like CA.
set -euo pipefail
. "$(dirname "$0")/_lib.sh"
kp_record k3s-install.sh "$@" "INSTALL_K3S_EXEC=${INSTALL_K3S_EXEC-}" "INSTALL_K3S_SKIP_DOWNLOAD=${INSTALL_K3S_SKIP_DOWNLOAD-}" "INSTALL_K3S_BIN_DIR=${INSTALL_K3S_BIN_DIR-}"
R=${KP_SYSROOT:?}
mkdir -p "$R/etc/rancher/k3s" "$R/etc/systemd/system" "$R/usr/local/bin" "$R/var/lib/rancher/k3s/server/tls"
# the K3s server writes the kubeconfig once it runs; KP_FAKE_K3S_KUBECONFIG=never: a server that never gets there
[[ $(kp_fake k3s-kubeconfig yes) == never ]] || printf 'apiVersion: v1\nkind: Config\n' >"$R/etc/rancher/k3s/k3s.yaml"
printf '[Service]\nExecStart=/usr/local/bin/k3s %s\n' "${INSTALL_K3S_EXEC-}" >"$R/etc/systemd/system/k3s.service"
printf '#!/bin/sh\nexec "%s/k3s-uninstall.sh" "$@"\n' "$KP_STUB_DIR" >"$R/usr/local/bin/k3s-uninstall.sh"
chmod +x "$R/usr/local/bin/k3s-uninstall.sh"
tls=$R/var/lib/rancher/k3s/server/tls
for ca in server-ca client-ca; do
  [[ -f $tls/$ca.crt ]] && continue
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tls/$ca.key" -out "$tls/$ca.crt" -days 30 -subj "/CN=k3s-$ca" 2>/dev/null
done
touch "$KP_STUB_STATE/k3s-running" "$KP_STUB_STATE/svc-k3s-active"
