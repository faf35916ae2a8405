#!/usr/bin/env bash
# Starts a full Cortex cluster on loopback, one process per component, with
# mutual TLS on every HTTP, gRPC and gossip link: a distributor, three
# ingesters, a querier, a query-frontend, a store-gateway, a compactor, the
# configs service and an alertmanager. Each process gets its own
# certificate from `cortex certs generate`. The script waits until every
# /ready answers 200, prints the addresses, and stops every process when it
# exits (Ctrl-C, SIGTERM, or a failure).
#
# Usage: scripts/cluster.sh [--exit-when-ready]
#   --exit-when-ready   stop the cluster and exit 0 once every process is ready
#
# Environment:
#   CORTEX         the cortex binary (default ./cortex; `make cluster` builds it)
#   CLUSTER_DIR    certificates, data and logs (default: a new temporary directory)
#   BASE_PORT      HTTP ports are BASE_PORT+0..9, gRPC +20..29, gossip +40..49 (default 19100)
#   READY_TIMEOUT  seconds to wait for the processes to be ready (default 120)
set -euo pipefail

exit_when_ready=false
for arg in "$@"; do
  case "$arg" in
  --exit-when-ready) exit_when_ready=true ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "cluster.sh: unknown argument $arg (only --exit-when-ready)" >&2
    exit 2
    ;;
  esac
done

cortex=${CORTEX:-./cortex}
base=${BASE_PORT:-19100}
ready_timeout=${READY_TIMEOUT:-120}
dir=${CLUSTER_DIR:-$(mktemp -d -t cortex-cluster.XXXXXX)}
if [ ! -x "$cortex" ]; then
  echo "cluster.sh: no cortex binary at $cortex: run 'make build' or set CORTEX" >&2
  exit 1
fi
mkdir -p "$dir/logs"
# Each process runs in a directory of its own under $dir, so that every
# relative default path stays there: paths given to it must be absolute.
dir=$(cd "$dir" && pwd)
cortex=$(cd "$(dirname "$cortex")" && pwd)/$(basename "$cortex")
certs="$dir/certs"

# The processes, in start order; the first ingester is the gossip seed.
names=(ingester-1 ingester-2 ingester-3 distributor query-frontend querier store-gateway compactor configs alertmanager)

index_of() {
  local i
  for i in "${!names[@]}"; do
    if [ "${names[$i]}" = "$1" ]; then
      echo "$i"
      return
    fi
  done
  echo "cluster.sh: no process $1" >&2
  exit 1
}
http_port() { echo $((base + $(index_of "$1"))); }
grpc_port() { echo $((base + 20 + $(index_of "$1"))); }
gossip_port() { echo $((base + 40 + $(index_of "$1"))); }

# One certificate per process, each valid for 127.0.0.1 and localhost;
# an existing CA in $certs is reused. "client" is for curl and Prometheus.
leaves=$(
  IFS=,
  echo "${names[*]},client"
)
"$cortex" certs generate -out-dir "$certs" -leaves "$leaves" >"$dir/logs/certs.log"

pids=()
# shellcheck disable=SC2317 # run by the EXIT trap
stop_all() {
  local status=$?
  trap - EXIT INT TERM
  if [ ${#pids[@]} -gt 0 ]; then
    echo "stopping ${#pids[@]} processes"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    # Up to 30 s for a clean stop, then SIGKILL.
    local deadline=$((SECONDS + 30))
    for pid in "${pids[@]}"; do
      while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
        sleep 0.2
      done
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    done
  fi
  echo "stopped; logs and data in $dir"
  exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# tls_flags NAME: the process's certificate as HTTP and gRPC server (client
# certificates required), as client of the ingesters and for gossip.
tls_flags() {
  local c="$certs/$1"
  echo "-server.http-tls-cert-path=$c.crt -server.http-tls-key-path=$c.key" \
    "-server.http-tls-client-auth=RequireAndVerifyClientCert -server.http-tls-ca-path=$certs/root.crt" \
    "-server.grpc-tls-cert-path=$c.crt -server.grpc-tls-key-path=$c.key" \
    "-server.grpc-tls-client-auth=RequireAndVerifyClientCert -server.grpc-tls-ca-path=$certs/root.crt" \
    "-ingester.client.tls-cert-path=$c.crt -ingester.client.tls-key-path=$c.key -ingester.client.tls-ca-path=$certs/root.crt"
}

# ring_flags NAME: the ingester ring over gossip with mutual TLS, joined
# through the first ingester.
ring_flags() {
  local c="$certs/$1"
  echo "-ring.store=memberlist -memberlist.bind-addr=127.0.0.1 -memberlist.bind-port=$(gossip_port "$1")" \
    "-memberlist.tls-enabled=true -memberlist.tls-cert-path=$c.crt -memberlist.tls-key-path=$c.key -memberlist.tls-ca-path=$certs/root.crt"
  if [ "$1" != ingester-1 ]; then
    echo "-memberlist.join=127.0.0.1:$(gossip_port ingester-1)"
  fi
}

# start NAME FLAGS...: runs cortex -target=<component> for NAME, logging to
# $dir/logs/NAME.log. The ring instance address and ID need no flags: on
# loopback they default to 127.0.0.1 and <hostname>-<gRPC port>.
start() {
  local name=$1
  shift
  local target=${name%-[0-9]}
  mkdir -p "$dir/$name"
  # shellcheck disable=SC2046 # the flag helpers' words are meant to split
  (cd "$dir/$name" && exec "$cortex" -target="$target" \
    -server.http-listen-address=127.0.0.1 -server.http-listen-port="$(http_port "$name")" \
    -server.grpc-listen-address=127.0.0.1 -server.grpc-listen-port="$(grpc_port "$name")" \
    -blocks-storage.filesystem.dir="$dir/bucket" \
    $(tls_flags "$name") "$@") >"$dir/logs/$name.log" 2>&1 &
  pids+=($!)
}

client_flags() { # client_flags PREFIX NAME: a client TLS link with NAME's certificate
  echo "-$1.tls-cert-path=$certs/$2.crt -$1.tls-key-path=$certs/$2.key -$1.tls-ca-path=$certs/root.crt"
}

# shellcheck disable=SC2046
{
  for i in 1 2 3; do
    start ingester-$i $(ring_flags ingester-$i)
  done
  start distributor $(ring_flags distributor)
  start query-frontend $(ring_flags query-frontend)
  start querier $(ring_flags querier) \
    -querier.frontend-address=127.0.0.1:"$(grpc_port query-frontend)" $(client_flags querier.frontend-client querier) \
    -querier.store-gateway-addresses=127.0.0.1:"$(grpc_port store-gateway)" $(client_flags querier.store-gateway-client querier)
  start store-gateway
  start compactor
  start configs -configs.database.uri="file:$dir/configs/configs.db"
  start alertmanager \
    -alertmanager.configs.url=https://127.0.0.1:"$(http_port configs)" $(client_flags alertmanager.configs alertmanager)
}

curl_client=(curl -sS --max-time 5 --cacert "$certs/root.crt" --cert "$certs/client.crt" --key "$certs/client.key")
deadline=$((SECONDS + ready_timeout))
for i in "${!names[@]}"; do
  name=${names[$i]}
  url="https://127.0.0.1:$(http_port "$name")/ready"
  until [ "$("${curl_client[@]}" -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = 200 ]; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "cluster.sh: $name exited; the end of $dir/logs/$name.log:" >&2
      tail -n 20 "$dir/logs/$name.log" >&2
      exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "cluster.sh: $name not ready within ${ready_timeout}s: $("${curl_client[@]}" "$url" 2>&1 || true)" >&2
      echo "the end of $dir/logs/$name.log:" >&2
      tail -n 20 "$dir/logs/$name.log" >&2
      exit 1
    fi
    sleep 0.5
  done
done

echo "cluster ready: ${#names[@]} processes, mutual TLS with certificates under $certs"
for name in "${names[@]}"; do
  printf '%-15s https://127.0.0.1:%s  grpc 127.0.0.1:%s  log %s\n' "$name" "$(http_port "$name")" "$(grpc_port "$name")" "$dir/logs/$name.log"
done
echo "write: https://127.0.0.1:$(http_port distributor)/api/v1/push"
echo "read:  https://127.0.0.1:$(http_port query-frontend)/prometheus"
echo "client certificate: $certs/client.crt (key $certs/client.key, CA $certs/root.crt)"
if $exit_when_ready; then
  exit 0
fi
echo "Ctrl-C stops the cluster"
# Returns when a process exits (or a signal arrives): the trap stops the rest.
wait -n "${pids[@]}" || true
echo "cluster.sh: a process exited; stopping the others" >&2
exit 1
