#!/usr/bin/env bash
# Renders the three charts with their default values into manifests/install/ (for users who
# install with `kubectl apply` instead of Helm), or checks that the committed files are current.
# Usage: hack/render-manifests.sh [--check]      (needs helm: bin/helm or PATH)
# Install order: kubectl apply -f manifests/crds/cosi -f manifests/crds/snapshot, then
#                kubectl apply -f manifests/install/
set -euo pipefail
cd "$(dirname "$0")/.."

NAMESPACE=kubevast-system
HELM=${HELM:-}
if [ -z "$HELM" ]; then
  if [ -x bin/helm ]; then HELM=bin/helm; else HELM=$(command -v helm || true); fi
fi
[ -n "$HELM" ] || { echo "helm not found: run 'make tools' (bin/helm) or put helm on PATH" >&2; exit 2; }

out=manifests/install
check=false
if [ "${1:-}" = "--check" ]; then
  check=true
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"

cat > "$out/00-namespace.yaml" <<YAML
# Rendered by hack/render-manifests.sh: do not edit.
apiVersion: v1
kind: Namespace
metadata:
  name: $NAMESPACE
  labels:
    app.kubernetes.io/part-of: kubevast
    # The node plugin is privileged.
    pod-security.kubernetes.io/enforce: privileged
YAML

# Release name = chart name, so object names match the charts' cross-references
# (vms-mock.kubevast-system.svc is the drivers' default VMS endpoint).
for chart in vms-mock kubevast-csi-block kubevast-cosi; do
  {
    printf '# Rendered by hack/render-manifests.sh from charts/%s (helm template, default values,\n' "$chart"
    printf '# namespace %s): do not edit; change the chart and re-run the script.\n' "$NAMESPACE"
    "$HELM" template "$chart" "charts/$chart" --namespace "$NAMESPACE"
  } > "$out/$chart.yaml"
done

if $check; then
  if ! diff -ru manifests/install "$out"; then
    echo "manifests/install is stale: run hack/render-manifests.sh" >&2
    exit 1
  fi
  echo "manifests/install is up to date"
fi
