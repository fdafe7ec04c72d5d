#!/usr/bin/env bash
# Installs everything the demo and the tests need, from the project's own files. Idempotent.
# Usage: hack/setup.sh [--with-tools]   (--with-tools also builds the pinned Go tools into bin/)
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/pip install -q --upgrade pip uv
fi
stamp=.venv/.kubevast-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing Python packages (kubevast + dev extras)"
  .venv/bin/uv pip install -q --python .venv/bin/python -e '.[dev]'
  touch "$stamp"
fi

# Debian packages the node plugin and the storage tests use (loop devices, filesystems, qemu).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=()
  # hack/debian-packages.txt: "<package> <file or command that proves it is installed>" per line.
  while read -r pkg probe; do
    case "$pkg" in ''|'#'*) continue ;; esac
    if [ -n "$probe" ] && { [ -e "$probe" ] || command -v "$probe" >/dev/null; }; then continue; fi
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done < hack/debian-packages.txt
  if [ ${#need[@]} -gt 0 ]; then
    say "installing Debian packages: ${need[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

if [ "${1:-}" = "--with-tools" ] && [ -x hack/tools/build.sh ]; then
  say "building pinned Go tools into bin/ (cached)"
  hack/tools/build.sh
fi
say "setup done"
