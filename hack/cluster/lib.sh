# shellcheck shell=bash
# Shared helpers of hack/cluster/*.sh (sourced, not run).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin_dir="$root/bin"
run_dir="${KUBEVAST_CLUSTER_DIR:-$root/_data/cluster}"

say() { printf '[cluster %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

# A free TCP port on 127.0.0.1 (the kernel picks it; a tiny race is accepted).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# True when the process recorded in $run_dir/pids/<name>.pid is alive.
running() {
  local f="$run_dir/pids/$1.pid"
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

# start <name> <command...>: runs the command in its own session, logs to $run_dir/logs/<name>.log.
start_process() {
  local name="$1"; shift
  mkdir -p "$run_dir/pids" "$run_dir/logs"
  setsid "$@" >>"$run_dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$run_dir/pids/$name.pid"
}

# stop <name>: TERM, then KILL after 10 s; removes the pid file.
stop_process() {
  local name="$1" f="$run_dir/pids/$1.pid" pid
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

# wait_for <seconds> <what> <command...>: polls the command every 0.5 s.
wait_for() {
  local limit="$1" what="$2" t0=$SECONDS; shift 2
  until "$@" >/dev/null 2>&1; do
    [ $((SECONDS - t0)) -lt "$limit" ] || return 1
    sleep 0.5
  done
  say "$what ready after $((SECONDS - t0))s"
}

kubectl_() { "$bin_dir/kubectl" --kubeconfig "$run_dir/kubeconfig" "$@"; }
