#!/usr/bin/env bash
# verify.sh: checks every file of this bundle ({{bundleName}}) against SHA256SUMS.
{{> shell-lib}}

# usage: prints the help text.
usage() {
  cat <<USAGE
Usage: $SCRIPT_NAME [--quiet] [--help]

Checks every file listed in SHA256SUMS (next to this script) with sha256sum -c and reports
missing and modified files, and files in the bundle that SHA256SUMS does not list (something
added after the build). install.sh runs it before touching the host.

  --quiet   print only problems and the final verdict
  --help    show this help

Exit status: 0 all files intact, 2 bad usage, 4 a file is missing, modified or unexpected (or
SHA256SUMS itself is missing or malformed).
USAGE
}

QUIET=0
normalize_args "$@"
set -- "${NORM_ARGS[@]+"${NORM_ARGS[@]}"}"
while (($#)); do
  case $1 in
    --quiet) QUIET=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown argument: $1" ;;
  esac
done

need_cmd sha256sum find sort
BUNDLE_DIR=$SCRIPT_DIR
cd -- "$BUNDLE_DIR"
[[ -f SHA256SUMS ]] || die_verify "SHA256SUMS not found in $BUNDLE_DIR: the bundle is incomplete"

# Every line must be "<64 hex> <space><space or *><relative path>", with no absolute path or "..".
total=0
missing=()
declare -A listed=()
while IFS= read -r line || [[ -n $line ]]; do
  total=$((total + 1))
  if [[ ! $line =~ ^[0-9a-f]{64}\ [\ *](.+)$ ]]; then
    die_verify "SHA256SUMS line $total is malformed: $line"
  fi
  path=${BASH_REMATCH[1]}
  case /$path/ in
    //* | */../*) die_verify "SHA256SUMS line $total names a path outside the bundle: $path" ;;
  esac
  listed[$path]=1
  [[ -f $path ]] || missing+=("$path")
done <SHA256SUMS
((total > 0)) || die_verify "SHA256SUMS is empty"

mismatched=()
out=$(LC_ALL=C sha256sum -c SHA256SUMS 2>/dev/null || true)
while IFS= read -r line; do
  case $line in
    *': FAILED open or read' | *': FAILED') ;;
    *) continue ;;
  esac
  path=${line%: FAILED*}
  [[ -f $path ]] && mismatched+=("$path")
done <<<"$out"

# Files (and links) in the bundle that SHA256SUMS does not list: added after the build.
unexpected=()
while IFS= read -r -d '' f; do
  f=${f#./}
  [[ $f == SHA256SUMS || -n ${listed[$f]+x} ]] || unexpected+=("$f")
done < <(find . \( -type f -o -type l \) -print0 | LC_ALL=C sort -z)

for p in "${missing[@]+"${missing[@]}"}"; do warn "missing:  $p"; done
for p in "${mismatched[@]+"${mismatched[@]}"}"; do warn "modified: $p"; done
for p in "${unexpected[@]+"${unexpected[@]}"}"; do warn "unexpected: $p (not in SHA256SUMS)"; done
if ((${#missing[@]} + ${#mismatched[@]} + ${#unexpected[@]} > 0)); then
  die_verify "${#missing[@]} missing and ${#mismatched[@]} modified file(s) out of $total, ${#unexpected[@]} unexpected, in $BUNDLE_DIR; copy the bundle again"
fi
[[ $QUIET == 1 ]] || log "all $total files of $BUNDLE_NAME match SHA256SUMS"
