#!/usr/bin/env bats
# common/verify.sh: sha256sum -c of the bundle, with clear reports and exit codes.
load helpers/common

setup() { kp_setup cloud; }

@test "verify.sh: an intact bundle passes" {
  run "$BUNDLE/verify.sh"
  status_is 0
  output_has "match SHA256SUMS"
}

@test "verify.sh: a modified file is reported, exit 4" {
  printf 'tampered\n' >>"$BUNDLE/manifests/metrics-server.yaml"
  run "$BUNDLE/verify.sh"
  status_is 4
  output_has "modified: manifests/metrics-server.yaml"
}

@test "verify.sh: a missing file is reported, exit 4" {
  rm "$BUNDLE/bin/keadm"
  run "$BUNDLE/verify.sh"
  status_is 4
  output_has "missing:  bin/keadm"
  output_has "1 missing and 0 modified"
}

@test "verify.sh: no SHA256SUMS, exit 4" {
  rm "$BUNDLE/SHA256SUMS"
  run "$BUNDLE/verify.sh"
  status_is 4
  output_has "SHA256SUMS not found"
}

@test "verify.sh: malformed or escaping SHA256SUMS lines, exit 4" {
  printf 'nothex  install.sh\n' >>"$BUNDLE/SHA256SUMS"
  run "$BUNDLE/verify.sh"
  status_is 4
  output_has "malformed"
  sed -i '$d' "$BUNDLE/SHA256SUMS"
  printf '%064d  ../etc/passwd\n' 0 >>"$BUNDLE/SHA256SUMS"
  run "$BUNDLE/verify.sh"
  status_is 4
  output_has "outside the bundle"
}

@test "verify.sh: --quiet prints nothing on success; bad usage exits 2" {
  run "$BUNDLE/verify.sh" --quiet
  status_is 0
  [[ -z $output ]]
  run "$BUNDLE/verify.sh" --bogus
  status_is 2
  output_has "unknown argument: --bogus"
}

@test "verify.sh: works from any working directory" {
  cd /
  run "$BUNDLE/verify.sh" --quiet
  status_is 0
}

@test "verify.sh: a file added to the bundle (not in SHA256SUMS) is reported, exit 4" {
  printf '#!/bin/sh\n' >"$BUNDLE/bin/backdoor"
  ln -s /etc/passwd "$BUNDLE/manifests/link"
  run "$BUNDLE/verify.sh"
  status_is 4
  output_has "unexpected: bin/backdoor (not in SHA256SUMS)"
  output_has "unexpected: manifests/link (not in SHA256SUMS)"
  output_has "0 missing and 0 modified file(s) out of"
  output_has ", 2 unexpected,"
}
