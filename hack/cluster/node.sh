#!/usr/bin/env bash
# Does what a kubelet would do for the API objects, since the local control plane has no kubelet.
#
# Usage: hack/cluster/node.sh register NAME
#          creates (or refreshes) Node NAME with status Ready, allocatable resources, no taints
#        hack/cluster/node.sh csinode NAME DRIVER NODE_ID [TOPOLOGY_KEY...]
#          adds/updates DRIVER (with its CSI node id) on the CSINode object of NAME, as the
#          node-driver-registrar + kubelet pair would after NodeGetInfo
# Uses the run dir of $KUBEVAST_CLUSTER_DIR (or --dir DIR first) and bin/kubectl.
set -euo pipefail
if [ "${1:-}" = --dir ]; then export KUBEVAST_CLUSTER_DIR="$2"; shift 2; fi
# shellcheck source=hack/cluster/lib.sh
. "$(dirname "$0")/lib.sh"

register() {
  local name="$1" now
  now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  kubectl_ apply -f - >/dev/null <<EOF2
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    # Set by a kubelet: without it the attach/detach controller ignores the Node (no VolumeAttachments).
    volumes.kubernetes.io/controller-managed-attach-detach: "true"
  labels:
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubevast.io/kubelet-less: "true"
spec:
  taints: []
EOF2
  kubectl_ patch node "$name" --subresource=status --type=merge -p "$(cat <<EOF2
{"status": {
  "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"},
  "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"},
  "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": "$name"}],
  "nodeInfo": {"kubeletVersion": "v1.36.2", "operatingSystem": "linux", "architecture": "amd64",
               "containerRuntimeVersion": "none://0", "kernelVersion": "$(uname -r)", "osImage": "kubevast local",
               "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": ""},
  "conditions": [
    {"type": "Ready", "status": "True", "reason": "KubeletLess", "message": "registered by hack/cluster/node.sh",
     "lastHeartbeatTime": "$now", "lastTransitionTime": "$now"},
    {"type": "MemoryPressure", "status": "False", "reason": "KubeletLess", "lastHeartbeatTime": "$now", "lastTransitionTime": "$now"},
    {"type": "DiskPressure", "status": "False", "reason": "KubeletLess", "lastHeartbeatTime": "$now", "lastTransitionTime": "$now"},
    {"type": "PIDPressure", "status": "False", "reason": "KubeletLess", "lastHeartbeatTime": "$now", "lastTransitionTime": "$now"}
  ]}}
EOF2
)" >/dev/null
  # The TaintNodesByCondition admission plugin puts node.kubernetes.io/not-ready on every new Node; a
  # kubelet would lift it once Ready. Without the node lifecycle controller nothing re-adds it.
  kubectl_ patch node "$name" --type=merge -p '{"spec": {"taints": null}}' >/dev/null
  say "node $name registered (Ready, untainted)"
}

csinode() {
  local name="$1" driver="$2" node_id="$3"; shift 3
  local keys="[]" uid step
  if [ $# -gt 0 ]; then keys="[$(printf '"%s",' "$@" | sed 's/,$//')]"; fi
  uid="$(kubectl_ get node "$name" -o jsonpath='{.metadata.uid}')"
  if ! kubectl_ get csinode "$name" >/dev/null 2>&1; then
    kubectl_ create -f - >/dev/null <<EOF2
apiVersion: storage.k8s.io/v1
kind: CSINode
metadata:
  name: $name
  ownerReferences: [{apiVersion: v1, kind: Node, name: $name, uid: $uid}]
spec:
  drivers: []
EOF2
  fi
  # Entries are immutable: a changed entry is removed first (as kubelet does on unregistration), then
  # the new one is added. Other drivers' entries are kept.
  local patch
  for step in remove add; do
    patch="$(kubectl_ get csinode "$name" -o json | python3 -c '
import json, sys
obj = json.load(sys.stdin)
step, driver, node_id, keys = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
wanted = {"name": driver, "nodeID": node_id}
if keys:
    wanted["topologyKeys"] = keys
drivers = obj["spec"].get("drivers") or []
current = [d for d in drivers if d["name"] == driver]
if current and {k: v for k, v in current[0].items() if k in ("name", "nodeID", "topologyKeys") and v} == wanted:
    print("")  # already registered as wanted
elif step == "remove":
    print(json.dumps({"spec": {"drivers": [d for d in drivers if d["name"] != driver]}}) if current else "")
else:
    print(json.dumps({"spec": {"drivers": [*drivers, wanted]}}))' "$step" "$driver" "$node_id" "$keys")"
    [ -z "$patch" ] || kubectl_ patch csinode "$name" --type=merge -p "$patch" >/dev/null
  done
  say "csinode $name: driver $driver node id $node_id"
}

case "${1:-}" in
  register) [ $# -eq 2 ] || die "usage: node.sh register NAME"; register "$2" ;;
  csinode) [ $# -ge 4 ] || die "usage: node.sh csinode NAME DRIVER NODE_ID [TOPOLOGY_KEY...]"; shift; csinode "$@" ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
