#!/usr/bin/env bash
# Runs testssl.sh (Debian's testssl.sh package) against every TLS port of a
# -target=all process with mutual TLS on HTTP, gRPC and gossip, and fails
# when a finding of severity MEDIUM or higher is reported (apart from those
# a private CA always has: no CRL, OCSP responder or CAA record). Minutes per port:
# run by hand (make testssl), not in CI.
#
# testssl.sh 3.0 cannot present a client certificate, so with
# RequireAndVerifyClientCert its HTTP-level checks (headers, ...) see the
# refused handshake; the protocol, cipher, key-exchange and vulnerability
# checks read the server's side of the handshake and are complete.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v testssl >/dev/null; then
	echo "testssl: not found; install it with: apt-get install testssl.sh" >&2
	exit 1
fi
work=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/cortex" ./cmd/cortex
"$work/cortex" certs generate -out-dir "$work/certs" -leaves server,client >/dev/null
c="$work/certs"
tls=()
for srv in http grpc; do
	tls+=("-server.$srv-tls-cert-path=$c/server.crt" "-server.$srv-tls-key-path=$c/server.key"
		"-server.$srv-tls-ca-path=$c/root.crt" "-server.$srv-tls-client-auth=RequireAndVerifyClientCert")
done
"$work/cortex" "${tls[@]}" \
	-ingester.client.tls-cert-path="$c/client.crt" -ingester.client.tls-key-path="$c/client.key" -ingester.client.tls-ca-path="$c/root.crt" \
	-ring.store=memberlist -memberlist.bind-addr=127.0.0.1 -memberlist.bind-port=0 \
	-memberlist.tls-cert-path="$c/server.crt" -memberlist.tls-key-path="$c/server.key" -memberlist.tls-ca-path="$c/root.crt" \
	-server.http-listen-address=127.0.0.1 -server.http-listen-port=0 \
	-server.grpc-listen-address=127.0.0.1 -server.grpc-listen-port=0 \
	-ingester.lifecycler.addr=127.0.0.1 \
	-blocks-storage.tsdb.dir="$work/tsdb" -blocks-storage.filesystem.dir="$work/bucket" \
	-blocks-storage.bucket-store.sync-dir="$work/sync" -compactor.data-dir="$work/compactor" \
	-configs.database.uri="file:$work/configs/configs.db" >"$work/cortex.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
	grep -q 'msg="gossip listening"' "$work/cortex.log" && grep -q 'msg="server listening"' "$work/cortex.log" && break
	sleep 0.1
done
http=$(sed -n 's/.*msg="server listening" http=127.0.0.1:\([0-9]*\).*/\1/p' "$work/cortex.log" | head -n1)
grpc=$(sed -n 's/.*msg="server listening".* grpc=127.0.0.1:\([0-9]*\).*/\1/p' "$work/cortex.log" | head -n1)
gossip=$(sed -n 's/.*msg="gossip listening".* port=\([0-9]*\).*/\1/p' "$work/cortex.log" | head -n1)
if [ -z "$http" ] || [ -z "$grpc" ] || [ -z "$gossip" ]; then
	echo "testssl: cortex did not start:" >&2
	cat "$work/cortex.log" >&2
	exit 1
fi

failed=0
for port in "http:$http" "grpc:$grpc" "gossip:$gossip"; do
	name=${port%%:*}
	n=${port#*:}
	echo "== $name port 127.0.0.1:$n"
	testssl --quiet --color 0 --warnings off --severity LOW --add-ca "$c/root.crt" --jsonfile "$work/$name.json" \
		--protocols --std --server-defaults --server-preference --vulnerable "127.0.0.1:$n" >"$work/$name.txt" 2>&1 || true
	python3 - "$work/$name.json" "$name" <<'PY' || failed=1
import json, sys
findings = json.load(open(sys.argv[1]))
rank = {"LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}
# A private CA publishes no CRL, OCSP responder or DNS CAA record: these
# findings describe the certificates (cortex certs generate's), not the server.
private_ca = {"cert_revocation", "DNS_CAArecord"}
for f in findings:
    note = " (private CA: accepted)" if f["id"] in private_ca else ""
    print(f"  {f['severity']:8} {f['id']}: {f['finding']}{note}")
bad = [f for f in findings if rank.get(f["severity"], 0) >= 2 and f["id"] not in private_ca]
print(f"  {sys.argv[2]}: {len(findings)} findings of severity LOW or higher, {len(bad)} MEDIUM or higher")
sys.exit(1 if bad else 0)
PY
done
exit $failed
