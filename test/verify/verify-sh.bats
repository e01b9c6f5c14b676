#!/usr/bin/env bats
# verify.sh as it ships inside real bundles (built and unpacked by verify-sh.test.ts into $KP_BUNDLES):
# passes on the good bundle, fails naming the file on tampered copies. Run with `bats --tap`.

setup() {
  [[ -n ${KP_BUNDLES:-} && -d $KP_BUNDLES ]] || {
    echo "KP_BUNDLES is not set: run this file through test/verify/verify-sh.test.ts" >&2
    return 1
  }
  WORK=$BATS_TEST_TMPDIR
}

# copy_bundle SIDE -> prints the path of a fresh copy of the unpacked bundle
copy_bundle() {
  local name=kubeprepare-$1-v1.22.0-linux-arm64
  cp -a "$KP_BUNDLES/$name" "$WORK/$name"
  printf '%s\n' "$WORK/$name"
}

flip_byte() { # file offset
  local file=$1 off=$2 byte
  byte=$(od -An -tu1 -j "$off" -N1 "$file" | tr -d ' ')
  printf "$(printf '\\%03o' $(((byte ^ 1) & 255)))" | dd of="$file" bs=1 seek="$off" conv=notrunc status=none
}

@test "verify.sh passes on a good cloud and edge bundle" {
  for side in cloud edge; do
    dir=$(copy_bundle "$side")
    run "$dir/verify.sh"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ $output == *"files of kubeprepare-$side-v1.22.0-linux-arm64 match SHA256SUMS"* ]]
  done
}

@test "verify.sh works when called from another directory, and --quiet prints nothing on success" {
  dir=$(copy_bundle edge)
  cd /
  run "$dir/verify.sh" --quiet
  [ "$status" -eq 0 ]
  [ -z "$output" ]
}

@test "a flipped byte in bin/keadm fails, naming bin/keadm as modified" {
  dir=$(copy_bundle cloud)
  flip_byte "$dir/bin/keadm" 3
  run "$dir/verify.sh"
  echo "$output"
  [ "$status" -eq 4 ]
  [[ $output == *"modified: bin/keadm"* ]]
  [[ $output == *"0 missing and 1 modified file(s)"* ]]
}

@test "a missing file fails, naming it" {
  dir=$(copy_bundle edge)
  rm "$dir/bin/keadm"
  run "$dir/verify.sh"
  echo "$output"
  [ "$status" -eq 4 ]
  [[ $output == *"missing:  bin/keadm"* ]]
  [[ $output == *"1 missing and 0 modified file(s)"* ]]
}

@test "a flipped byte in the images archive and a missing manifest are both reported" {
  dir=$(copy_bundle cloud)
  flip_byte "$dir/images/images.tar" 2000
  rm "$dir/manifests/metrics-server.yaml"
  run "$dir/verify.sh"
  echo "$output"
  [ "$status" -eq 4 ]
  [[ $output == *"modified: images/images.tar"* ]]
  [[ $output == *"missing:  manifests/metrics-server.yaml"* ]]
}

@test "a missing or empty SHA256SUMS fails, naming SHA256SUMS" {
  dir=$(copy_bundle edge)
  rm "$dir/SHA256SUMS"
  run "$dir/verify.sh"
  [ "$status" -eq 4 ]
  [[ $output == *"SHA256SUMS not found"* ]]
  : >"$dir/SHA256SUMS"
  run "$dir/verify.sh"
  [ "$status" -eq 4 ]
  [[ $output == *"SHA256SUMS is empty"* ]]
}
