#!/usr/bin/env bash
# Installs upstream CRDs into the local control plane, straight from the pinned Go module sources:
#   snapshot : VolumeSnapshot* and VolumeGroupSnapshot* CRDs of external-snapshotter client/v8 v8.6.0
#   cosi     : COSI v1alpha1 CRDs (Bucket*, objectstorage.k8s.io) of container-object-storage-interface
#              client v0.2.2, with the api-approved.kubernetes.io annotation kube-apiserver requires for
#              *.k8s.io groups added (the KEP link upstream's kustomization uses)
# Usage: hack/cluster/crds.sh [--dir DIR] [--print] snapshot|cosi|all ...
#   --print  write the manifests to stdout instead of applying them (to vendor them elsewhere)
# The module sources come from the Go module cache (downloaded through the Go module proxy when absent).
set -euo pipefail
print=0
sets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) export KUBEVAST_CLUSTER_DIR="$2"; shift 2 ;;
    --print) print=1; shift ;;
    snapshot|cosi) sets+=("$1"); shift ;;
    all) sets+=(snapshot cosi); shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "crds.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ ${#sets[@]} -gt 0 ] || { sed -n '2,10p' "$0"; exit 2; }
# shellcheck source=hack/cluster/lib.sh
. "$(dirname "$0")/lib.sh"

SNAPSHOT_MODULE="github.com/kubernetes-csi/external-snapshotter/client/v8@v8.6.0"
COSI_MODULE="sigs.k8s.io/container-object-storage-interface/client@v0.2.2"
# The value upstream's kustomization adds (and charts/kubevast-cosi/crds carries): identical annotations
# let crds.sh and a later helm install of the chart's CRD copies agree.
COSI_APPROVAL="https://github.com/kubernetes/enhancements/tree/master/keps/sig-storage/1979-object-storage-support"

module_dir() {
  GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}sigs.k8s.io/container-object-storage-interface" GOFLAGS=-mod=mod \
    go mod download -json "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'
}

manifests() {
  local set="$1" dir f
  case "$set" in
    snapshot)
      dir="$(module_dir "$SNAPSHOT_MODULE")/config/crd"
      for f in "$dir"/*.storage.k8s.io_*.yaml; do echo "---"; grep -v '^---$' "$f"; done ;;
    cosi)
      dir="$(module_dir "$COSI_MODULE")/config/crd"
      for f in "$dir"/objectstorage.k8s.io_*.yaml; do
        echo "---"
        grep -v '^---$' "$f" | sed "/^  annotations:\$/a\\    api-approved.kubernetes.io: \"$COSI_APPROVAL\""
      done ;;
  esac
}

for set in "${sets[@]}"; do
  if [ "$print" = 1 ]; then manifests "$set"; continue; fi
  manifests "$set" | kubectl_ apply --server-side --force-conflicts -f - >/dev/null
  mapfile -t names < <(manifests "$set" | awk '/^kind: CustomResourceDefinition/{crd=1} crd && /^  name:/{print $2; crd=0}')
  kubectl_ wait --for condition=established --timeout=60s "${names[@]/#/crd/}" >/dev/null
  say "CRDs installed ($set): ${names[*]}"
done
