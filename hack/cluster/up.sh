#!/usr/bin/env bash
# Brings up a real, kubelet-less Kubernetes control plane as local processes on 127.0.0.1:
# etcd + kube-apiserver + kube-controller-manager + kube-scheduler (pinned in hack/tools/versions.txt),
# with a generated CA, serving/client certificates, an admin kubeconfig and a registered Ready Node.
#
# Usage: hack/cluster/up.sh [--dir DIR] [--node NAME] [--no-build]
#   --dir DIR    run dir (certs, kubeconfig, etcd data, logs, pids, env); default $KUBEVAST_CLUSTER_DIR
#                or <repo>/_data/cluster
#   --node NAME  name of the Node object to register (default kubevast-node-0)
#   --no-build   fail instead of running hack/tools/build.sh when a binary is missing
# Idempotent: when the run dir's control plane is already up it only prints the env file.
# Then: `source <dir>/env` (exports KUBECONFIG, KUBEVAST_CLUSTER_DIR, KUBEVAST_NODE_NAME, ...);
# stop with hack/cluster/down.sh [--dir DIR] [--purge].
set -euo pipefail
node_name="kubevast-node-0"
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) export KUBEVAST_CLUSTER_DIR="$2"; shift 2 ;;
    --node) node_name="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "up.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
# shellcheck source=hack/cluster/lib.sh
. "$(dirname "$0")/lib.sh"
t_start=$SECONDS
mkdir -p "$run_dir"
run_dir="$(cd "$run_dir" && pwd)"
export KUBEVAST_CLUSTER_DIR="$run_dir"

if running etcd && running kube-apiserver && running kube-controller-manager && running kube-scheduler \
    && [ -f "$run_dir/env" ] && kubectl_ get --raw /readyz >/dev/null 2>&1; then
  say "control plane already up in $run_dir"
  cat "$run_dir/env"
  exit 0
fi
# A half-up leftover (crash, reboot): stop what is left, keep certs, start again.
"$root/hack/cluster/down.sh" --dir "$run_dir" >/dev/null

need=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
missing_bins=()
for b in "${need[@]}"; do [ -x "$bin_dir/$b" ] || missing_bins+=("$b"); done
if [ ${#missing_bins[@]} -gt 0 ]; then
  [ "$build" = 1 ] || die "missing in bin/: ${missing_bins[*]} (run hack/tools/build.sh ${missing_bins[*]})"
  say "building ${missing_bins[*]} (hack/tools/build.sh)"
  "$root/hack/tools/build.sh" "${missing_bins[@]}"
fi
command -v etcd >/dev/null || die "etcd not found (Debian etcd-server: hack/setup.sh installs it)"
command -v openssl >/dev/null || die "openssl not found"

# ---- certificates (kept across restarts of the same run dir) ----
pki="$run_dir/pki"
mkdir -p "$pki"
if [ ! -f "$pki/admin.crt" ]; then
  say "generating CA and certificates in $pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=kubevast-local-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    # serving certificate of kube-apiserver
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n' > apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    # admin client certificate (system:masters); the controllers use it too
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kubevast-admin" -keyout admin.key -out admin.csr 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile client.ext -out admin.crt 2>/dev/null
    # service-account token signing key
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr ./*.ext ca.srl
  )
fi

etcd_port="$(free_port)"; etcd_peer_port="$(free_port)"; api_port="$(free_port)"
server="https://127.0.0.1:$api_port"
cat > "$run_dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kubevast-local
  cluster:
    server: $server
    certificate-authority: $pki/ca.crt
users:
- name: kubevast-admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: kubevast-local
  context: {cluster: kubevast-local, user: kubevast-admin}
current-context: kubevast-local
EOF

# ---- etcd ----
say "starting etcd on 127.0.0.1:$etcd_port"
start_process etcd etcd --name default --data-dir "$run_dir/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster "default=http://127.0.0.1:$etcd_peer_port" \
  --quota-backend-bytes 2147483648 --snapshot-count 10000
wait_for 30 etcd curl -fsS "http://127.0.0.1:$etcd_port/health" \
  || { tail -20 "$run_dir/logs/etcd.log" >&2; die "etcd did not become healthy"; }

# ---- kube-apiserver ----
say "starting kube-apiserver on $server"
start_process kube-apiserver "$bin_dir/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
  --endpoint-reconciler-type none \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range 10.96.0.0/16 \
  --authorization-mode RBAC --allow-privileged=true --profiling=false \
  --cert-dir "$run_dir/apiserver-certs" --v=1
wait_for 90 kube-apiserver curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
  "$server/readyz" || { tail -30 "$run_dir/logs/kube-apiserver.log" >&2; die "kube-apiserver did not become ready"; }

# ---- kube-controller-manager ----
# Without a kubelet: the node lifecycle controller would mark the registered Node NotReady and taint it;
# node IPAM needs a cluster CIDR; the cloud controllers need a cloud. Everything else runs.
say "starting kube-controller-manager"
start_process kube-controller-manager "$bin_dir/kube-controller-manager" \
  --kubeconfig "$run_dir/kubeconfig" \
  --authentication-kubeconfig "$run_dir/kubeconfig" --authorization-kubeconfig "$run_dir/kubeconfig" \
  --bind-address 127.0.0.1 --secure-port 0 --leader-elect=false \
  --controllers '*,-node-lifecycle-controller,-node-ipam-controller,-cloud-node-lifecycle-controller,-service-lb-controller,-node-route-controller' \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --use-service-account-credentials=true \
  --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" --v=1

# ---- kube-scheduler ----
say "starting kube-scheduler"
start_process kube-scheduler "$bin_dir/kube-scheduler" \
  --kubeconfig "$run_dir/kubeconfig" \
  --authentication-kubeconfig "$run_dir/kubeconfig" --authorization-kubeconfig "$run_dir/kubeconfig" \
  --bind-address 127.0.0.1 --secure-port 0 --leader-elect=false --v=1

# ---- the Node (no kubelet registers it) ----
"$root/hack/cluster/node.sh" register "$node_name"

# The service-account controller creating "default" proves kube-controller-manager works.
wait_for 60 kube-controller-manager kubectl_ -n default get serviceaccount default \
  || { tail -30 "$run_dir/logs/kube-controller-manager.log" >&2; die "kube-controller-manager is not working"; }
running kube-scheduler || { tail -30 "$run_dir/logs/kube-scheduler.log" >&2; die "kube-scheduler exited"; }

cat > "$run_dir/env" <<EOF
export KUBECONFIG=$run_dir/kubeconfig
export KUBEVAST_CLUSTER_DIR=$run_dir
export KUBEVAST_API_SERVER=$server
export KUBEVAST_NODE_NAME=$node_name
export KUBEVAST_ETCD=http://127.0.0.1:$etcd_port
EOF
say "control plane up in $((SECONDS - t_start))s; logs in $run_dir/logs"
cat "$run_dir/env"
