#!/usr/bin/env bash
# Refreshes the pinned upstream manifests under manifests/ from the Go module proxy (the module
# zips carry the YAML), then copies the COSI CRDs into the kubevast-cosi chart.
#   manifests/crds/cosi/       COSI v1alpha1 CRDs      sigs.k8s.io/container-object-storage-interface/client
#   manifests/crds/snapshot/   VolumeSnapshot CRDs     github.com/kubernetes-csi/external-snapshotter/client/v8
#   manifests/upstream/        snapshot-controller     github.com/kubernetes-csi/external-snapshotter/v8
# Usage: hack/fetch-upstream-manifests.sh   (needs `go`; versions are pinned below)
set -euo pipefail
cd "$(dirname "$0")/.."

COSI_VERSION=v0.2.2
SNAPSHOTTER_VERSION=v8.6.0
# kube-apiserver refuses CRDs in *.k8s.io groups without this annotation; the COSI release-0.2
# CRD files lack it (upstream adds it in its kustomization, with this value).
COSI_API_APPROVED="https://github.com/kubernetes/enhancements/tree/master/keps/sig-storage/1979-object-storage-support"

moddir() {
  # The COSI client module is not in the checksum database: fetch it without sumdb verification.
  GOFLAGS=-mod=mod GOSUMDB=off go mod download -json "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d["Error"]) if d.get("Error") else print(d["Dir"])'
}

header() { # module version source-path
  printf '# Pinned upstream manifest: do not edit; refresh with hack/fetch-upstream-manifests.sh\n'
  printf '# Source: Go module %s@%s, file %s\n' "$1" "$2" "$3"
  if [ -n "${4:-}" ]; then printf '# Local change: %s\n' "$4"; fi
}

cosi_mod=sigs.k8s.io/container-object-storage-interface/client
cosi_dir=$(moddir "$cosi_mod@$COSI_VERSION")
mkdir -p manifests/crds/cosi manifests/crds/snapshot manifests/upstream
for kind in bucketclasses bucketclaims buckets bucketaccessclasses bucketaccesses; do
  src="config/crd/objectstorage.k8s.io_${kind}.yaml"
  out="manifests/crds/cosi/objectstorage.k8s.io_${kind}.yaml"
  {
    header "$cosi_mod" "$COSI_VERSION" "$src" "added the api-approved.kubernetes.io annotation (as upstream's kustomization does)"
    # Insert the annotation as the first entry of metadata.annotations.
    awk -v v="$COSI_API_APPROVED" '
      !done && /^  annotations:$/ { print; print "    api-approved.kubernetes.io: \"" v "\""; done=1; next }
      { print }' "$cosi_dir/$src"
  } > "$out"
  grep -q 'api-approved.kubernetes.io' "$out" || { echo "annotation not added to $out" >&2; exit 1; }
done

snap_client=github.com/kubernetes-csi/external-snapshotter/client/v8
snap_client_dir=$(moddir "$snap_client@$SNAPSHOTTER_VERSION")
for f in snapshot.storage.k8s.io_volumesnapshotclasses snapshot.storage.k8s.io_volumesnapshotcontents \
         snapshot.storage.k8s.io_volumesnapshots groupsnapshot.storage.k8s.io_volumegroupsnapshotclasses \
         groupsnapshot.storage.k8s.io_volumegroupsnapshotcontents groupsnapshot.storage.k8s.io_volumegroupsnapshots; do
  src="config/crd/$f.yaml"
  { header "$snap_client" "$SNAPSHOTTER_VERSION" "$src"; cat "$snap_client_dir/$src"; } > "manifests/crds/snapshot/$f.yaml"
done

snap=github.com/kubernetes-csi/external-snapshotter/v8
snap_dir=$(moddir "$snap@$SNAPSHOTTER_VERSION")
{
  header "$snap" "$SNAPSHOTTER_VERSION" "deploy/kubernetes/snapshot-controller/{rbac,setup}-snapshot-controller.yaml" \
    "image tag set to $SNAPSHOTTER_VERSION (the tagged file still names the previous release)"
  cat "$snap_dir/deploy/kubernetes/snapshot-controller/rbac-snapshot-controller.yaml"
  printf '\n---\n'
  sed -E "s#(registry.k8s.io/sig-storage/snapshot-controller:)v[0-9.]+#\1$SNAPSHOTTER_VERSION#" \
    "$snap_dir/deploy/kubernetes/snapshot-controller/setup-snapshot-controller.yaml"
} > manifests/upstream/snapshot-controller.yaml

mkdir -p charts/kubevast-cosi/crds
cp manifests/crds/cosi/*.yaml charts/kubevast-cosi/crds/
echo "pinned manifests refreshed: COSI $COSI_VERSION, external-snapshotter $SNAPSHOTTER_VERSION"
