#!/usr/bin/env bash
# End-to-end run on kind, for machines with a Docker engine (the project's CI machines have none:
# there the same e2e suite runs against the local control plane of hack/cluster/).
#
#   1. creates a single-node kind cluster (or reuses it),
#   2. builds the kubevast image and loads it into the node (`kind load docker-image`),
#   3. installs the upstream VolumeSnapshot CRDs + snapshot-controller (manifests/, v8.6.0) and,
#      through the kubevast-cosi chart, the COSI v0.2.2 CRDs + controller,
#   4. helm-installs vms-mock, kubevast-csi-block (loop attach backend by default: the node plugin
#      attaches vms-mock's backing files from the shared host path) and kubevast-cosi,
#   5. runs pods that write and read a raw block device and an S3 bucket (manifests/examples),
#   6. runs the e2e pytest suite (tests/e2e) with KUBECONFIG pointing at the kind cluster.
#
# Usage: hack/e2e-kind.sh [--keep] [--skip-build] [--only-install]
#   --keep          leave the cluster up afterwards (default: delete it when everything passed)
#   --skip-build    use the image already loaded (KUBEVAST_IMAGE)
#   --only-install  stop after step 4
# Environment: KIND_CLUSTER (kubevast-e2e), KUBEVAST_IMAGE (kubevast:e2e), ATTACH_BACKEND (loop |
#   nvme-tcp: needs the nvme-tcp module on the Docker host), KIND_NODE_IMAGE (kind's default),
#   PYTEST_ARGS (extra pytest arguments).
# Needs: docker, kind, kubectl, helm (bin/ from `make tools`, or PATH), the .venv (make setup).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

cluster=${KIND_CLUSTER:-kubevast-e2e}
image=${KUBEVAST_IMAGE:-kubevast:e2e}
backend=${ATTACH_BACKEND:-loop}
namespace=kubevast-system
keep=false
build=true
only_install=false
for arg in "$@"; do
  case "$arg" in
    --keep) keep=true ;;
    --skip-build) build=false ;;
    --only-install) only_install=true; keep=true ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "e2e-kind.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'e2e-kind.sh: %s\n' "$*" >&2; exit 1; }
tool() { # prefer the project's pinned bin/ copy
  if [ -x "$root/bin/$1" ]; then echo "$root/bin/$1"; elif command -v "$1" >/dev/null; then command -v "$1"
  else die "$1 not found: $2"; fi
}

docker=$(tool docker "install a Docker engine (kind needs one)")
kind=$(tool kind "install kind (https://kind.sigs.k8s.io)")
kubectl=$(tool kubectl "run 'make tools'")
helm=$(tool helm "run 'make tools'")
[ -x .venv/bin/python ] || die "no .venv: run 'make setup'"
"$docker" info >/dev/null 2>&1 || die "the Docker engine is not reachable"

kubeconfig="$root/_data/kind/$cluster.kubeconfig"
mkdir -p "$(dirname "$kubeconfig")"
export KUBECONFIG="$kubeconfig"
k() { "$kubectl" "$@"; }

pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ "$rc" -ne 0 ]; then
    say "failed (exit $rc): pods and events of $namespace follow; the cluster is kept for debugging"
    k -n "$namespace" get pods -o wide || true
    k get events -A --sort-by=.lastTimestamp | tail -40 || true
  elif ! $keep; then
    say "deleting kind cluster $cluster"
    "$kind" delete cluster --name "$cluster"
  fi
}
trap cleanup EXIT

# --- 1. cluster ---------------------------------------------------------------------------------
if "$kind" get clusters | grep -qx "$cluster"; then
  say "reusing kind cluster $cluster"
  "$kind" export kubeconfig --name "$cluster" --kubeconfig "$kubeconfig"
else
  say "creating kind cluster $cluster"
  node_image=()
  if [ -n "${KIND_NODE_IMAGE:-}" ]; then node_image=(--image "$KIND_NODE_IMAGE"); fi
  "$kind" create cluster --name "$cluster" --kubeconfig "$kubeconfig" "${node_image[@]}" --wait 120s \
    --config - <<'YAML'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    # /dev of the host: loop devices made by the node plugin must be visible to the pods.
    extraMounts:
      - hostPath: /dev
        containerPath: /dev
YAML
fi

# --- 2. image -----------------------------------------------------------------------------------
if $build; then
  say "building $image"
  "$docker" build -t "$image" --build-arg "REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" .
fi
say "loading $image into $cluster"
"$kind" load docker-image "$image" --name "$cluster"
repo=${image%:*}
tag=${image##*:}

# --- 3. upstream CRDs and controllers -----------------------------------------------------------
say "installing VolumeSnapshot CRDs and snapshot-controller (external-snapshotter v8.6.0)"
k apply --server-side -f manifests/crds/snapshot/
k wait --for=condition=Established --timeout=60s -f manifests/crds/snapshot/
k apply --server-side -f manifests/upstream/snapshot-controller.yaml
k -n kube-system rollout status deployment/snapshot-controller --timeout=180s

# --- 4. charts ----------------------------------------------------------------------------------
k create namespace "$namespace" --dry-run=client -o yaml | k apply -f -
k label namespace "$namespace" pod-security.kubernetes.io/enforce=privileged --overwrite
common=(--namespace "$namespace" --wait --timeout 5m --set "image.repository=$repo" --set "image.tag=$tag"
        --set image.pullPolicy=Never)

say "helm install vms-mock"
"$helm" upgrade --install vms-mock charts/vms-mock "${common[@]}" \
  --set persistence.hostPath=/var/lib/vms-mock --set capacity=50GiB

say "helm install kubevast-csi-block (attach backend: $backend)"
block_args=(--set "node.attachBackend=$backend" --set vms.existingSecret=vms-mock-credentials
            --set node.hostNetwork=false
            --set "controller.targetAddresses=vms-mock-nvme.$namespace.svc:4420"
            --set controller.subsystem=block-default)  # the BLOCK view of vms-mock's built-in seed
if [ "$backend" = loop ]; then block_args+=(--set node.loopBackingDir=/var/lib/vms-mock/block); fi
"$helm" upgrade --install kubevast-csi-block charts/kubevast-csi-block "${common[@]}" "${block_args[@]}"

say "helm install kubevast-cosi (with the COSI v0.2.2 CRDs and controller)"
"$helm" upgrade --install kubevast-cosi charts/kubevast-cosi "${common[@]}" \
  --set cosiController.install=true --set vms.existingSecret=vms-mock-credentials
k -n "$namespace" get pods -o wide
if $only_install; then say "installed; KUBECONFIG=$kubeconfig"; exit 0; fi

# --- 5. workloads: a raw block device and an S3 bucket ------------------------------------------
work=e2e-workloads
k create namespace "$work" --dry-run=client -o yaml | k apply -f -
say "block: PVC (volumeMode Block) + pod writing and reading the device"
k -n "$work" apply -f manifests/examples/block/pvc-block.yaml -f manifests/examples/block/pod-block.yaml
k -n "$work" wait --for=jsonpath='{.status.phase}'=Bound pvc/kubevast-block-pvc --timeout=180s
k -n "$work" wait --for=jsonpath='{.status.phase}'=Succeeded pod/kubevast-block-user --timeout=300s
k -n "$work" logs pod/kubevast-block-user | tee /dev/stderr | grep -q "block device write/read OK"

say "filesystem: ext4 PVC + pod"
k -n "$work" apply -f manifests/examples/block/pvc-filesystem.yaml
k -n "$work" wait --for=jsonpath='{.status.phase}'=Succeeded pod/kubevast-fs-user --timeout=300s

say "snapshot, restore, clone, expansion"
k -n "$work" apply -f manifests/examples/block/volumesnapshot.yaml
k -n "$work" wait --for=jsonpath='{.status.readyToUse}'=true volumesnapshot/kubevast-block-snap --timeout=180s
k -n "$work" apply -f manifests/examples/block/pvc-restore.yaml -f manifests/examples/block/pvc-clone.yaml
k -n "$work" wait --for=jsonpath='{.status.phase}'=Bound pvc/kubevast-block-restore pvc/kubevast-block-clone \
  --timeout=180s
k -n "$work" apply -f manifests/examples/block/pvc-expand.yaml
k -n "$work" wait --for=jsonpath='{.status.capacity.storage}'=2Gi pvc/kubevast-block-pvc --timeout=180s

say "object: BucketClaim + BucketAccess + pod using the flat keys"
k -n "$work" apply -f manifests/examples/cosi/bucketclaim.yaml -f manifests/examples/cosi/bucketaccess.yaml
k -n "$work" wait --for=jsonpath='{.status.bucketReady}'=true bucketclaim/kubevast-bucket --timeout=180s
k -n "$work" wait --for=jsonpath='{.status.accessGranted}'=true bucketaccess/kubevast-bucket-access \
  --timeout=180s
k -n "$work" apply -f manifests/examples/cosi/pod-flat-keys.yaml
k -n "$work" wait --for=jsonpath='{.status.phase}'=Succeeded pod/kubevast-bucket-user --timeout=300s
k -n "$work" logs pod/kubevast-bucket-user | tee /dev/stderr | grep -q "hello.txt"

# --- 6. the e2e suite ---------------------------------------------------------------------------
# The suite needs only a kubeconfig; the emulator's API and S3 endpoints are forwarded to loopback
# for the checks it makes from outside the cluster.
say "port-forwarding vms-mock (API, S3) to 127.0.0.1"
k -n "$namespace" port-forward svc/vms-mock 18080:8080 19000:9000 >/dev/null &
pids+=($!)
sleep 3
say "running tests/e2e"
# shellcheck disable=SC2086  # PYTEST_ARGS is a list of words on purpose
KUBEVAST_E2E_PLATFORM=kind KUBEVAST_E2E_NAMESPACE="$namespace" \
KUBEVAST_VMS_URL=http://127.0.0.1:18080 KUBEVAST_S3_URL=http://127.0.0.1:19000 \
  .venv/bin/python -m pytest tests/e2e -p no:cacheprovider ${PYTEST_ARGS:-}
say "e2e on kind passed"
