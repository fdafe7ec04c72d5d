#!/usr/bin/env bash
# Runs a CSI sidecar or the COSI controller/sidecar from bin/ as a local process against the local
# control plane (kubeconfig of the run dir, no leader election), logging to <run dir>/logs/<instance>.log.
#
# Usage: hack/cluster/sidecar.sh [--dir DIR] start TOOL [--socket PATH] [--name INSTANCE] [-- EXTRA_ARGS...]
#        hack/cluster/sidecar.sh [--dir DIR] stop INSTANCE
#        hack/cluster/sidecar.sh [--dir DIR] list
# TOOL: csi-provisioner csi-attacher csi-resizer csi-snapshotter (need --socket: the CSI driver's unix
#       socket), snapshot-controller, objectstorage-controller, objectstorage-sidecar (needs --socket:
#       the COSI driver's unix socket; start the driver first: the v1alpha1 sidecar does not reconnect).
# INSTANCE defaults to TOOL. hack/cluster/down.sh stops every instance.
set -euo pipefail
if [ "${1:-}" = --dir ]; then export KUBEVAST_CLUSTER_DIR="$2"; shift 2; fi
# shellcheck source=hack/cluster/lib.sh
. "$(dirname "$0")/lib.sh"
usage() { sed -n '2,12p' "$0"; exit 2; }
control_plane=" etcd kube-apiserver kube-controller-manager kube-scheduler "

start() {
  local tool="$1" socket="" name="" extra=() args=()
  shift
  while [ $# -gt 0 ]; do
    case "$1" in
      --socket) socket="$2"; shift 2 ;;
      --name) name="$2"; shift 2 ;;
      --) shift; extra=("$@"); break ;;
      *) die "start: unknown argument $1" ;;
    esac
  done
  name="${name:-$tool}"
  case "$control_plane" in *" $name "*) die "instance name $name is reserved" ;; esac
  [ -f "$run_dir/kubeconfig" ] || die "no control plane in $run_dir (run hack/cluster/up.sh)"
  [ -x "$bin_dir/$tool" ] || die "bin/$tool missing (run hack/tools/build.sh $tool)"
  running "$name" && die "$name is already running (pid $(cat "$run_dir/pids/$name.pid"))"
  local kc="$run_dir/kubeconfig"
  case "$tool" in
    csi-provisioner|csi-attacher|csi-resizer|csi-snapshotter)
      [ -n "$socket" ] || die "$tool needs --socket PATH (the CSI driver's unix socket)"
      args=(--csi-address "$socket" --kubeconfig "$kc" --leader-election=false --v=4) ;;
    snapshot-controller)
      args=(--kubeconfig "$kc" --leader-election=false --v=4) ;;
    objectstorage-controller)
      args=(--kubeconfig "$kc" --v=4) ;;
    objectstorage-sidecar)
      [ -n "$socket" ] || die "$tool needs --socket PATH (the COSI driver's unix socket)"
      case "$socket" in unix://*) ;; *) socket="unix://$socket" ;; esac
      args=(--kubeconfig "$kc" --driver-addr "$socket" --v=4) ;;
    *) die "unknown tool $tool" ;;
  esac
  COSI_LEADER_ELECTION=false start_process "$name" "$bin_dir/$tool" "${args[@]}" "${extra[@]}"
  sleep 1
  running "$name" || { tail -20 "$run_dir/logs/$name.log" >&2; die "$name exited at start"; }
  say "$name started (pid $(cat "$run_dir/pids/$name.pid")), log $run_dir/logs/$name.log"
}

case "${1:-}" in
  start) [ $# -ge 2 ] || usage; shift; start "$@" ;;
  stop) [ $# -eq 2 ] || usage
        case "$control_plane" in *" $2 "*) die "use hack/cluster/down.sh for the control plane" ;; esac
        stop_process "$2"; say "$2 stopped" ;;
  list) for f in "$run_dir"/pids/*.pid; do
          [ -e "$f" ] || continue
          n="$(basename "$f" .pid)"; state=dead; running "$n" && state=running
          printf '%-28s %-8s pid %s\n' "$n" "$state" "$(cat "$f")"
        done ;;
  *) usage ;;
esac
