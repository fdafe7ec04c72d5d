#!/usr/bin/env bash
# Stops the local control plane (and every sidecar started by hack/cluster/sidecar.sh) of a run dir.
# Usage: hack/cluster/down.sh [--dir DIR] [--purge]
#   --purge  also deletes the run dir (etcd data, certificates, logs)
set -euo pipefail
purge=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) export KUBEVAST_CLUSTER_DIR="$2"; shift 2 ;;
    --purge) purge=1; shift ;;
    -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "down.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
# shellcheck source=hack/cluster/lib.sh
. "$(dirname "$0")/lib.sh"
if [ -d "$run_dir/pids" ]; then
  # Sidecars and controllers first, then the control plane top-down, etcd last.
  for f in "$run_dir"/pids/*.pid; do
    [ -e "$f" ] || continue
    name="$(basename "$f" .pid)"
    case "$name" in etcd|kube-apiserver|kube-controller-manager|kube-scheduler) ;; *) stop_process "$name" ;; esac
  done
  for name in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_process "$name"; done
  say "stopped processes of $run_dir"
fi
if [ "$purge" = 1 ] && [ -d "$run_dir" ]; then
  rm -rf "$run_dir"
  say "removed $run_dir"
fi
