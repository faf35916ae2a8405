#!/usr/bin/env bash
# Regenerates every committed .pb.go from its .proto, or with --check
# verifies that the committed .pb.go files are what the generator writes.
#
# Pinned tools, so the generated headers ("// 	protoc-gen-go vX",
# "// 	protoc vY") and code are the same on every machine:
#   - protoc-gen-go at the version of google.golang.org/protobuf in go.mod
#     (the runtime the generated code must match), installed with
#     `go install` into a cache directory outside the clone;
#   - protoc 3.21.12, Debian 12's protobuf-compiler package
#     (apt-get install protobuf-compiler).
# No .proto here defines a service: the gRPC glue is hand-written
# (service.go beside each .pb.go), so protoc-gen-go-grpc is not used.
#
# Usage: scripts/genproto.sh          regenerate in place
#        scripts/genproto.sh --check  fail if a .pb.go differs from what is
#                                     generated (or has no .proto)
set -euo pipefail

PROTOC_VERSION=3.21.12
GO=${GO:-go}
TOOLS_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/cortex-tools"

mode=generate
case "${1:-}" in
"") ;;
--check) mode=check ;;
*)
	echo "usage: $0 [--check]" >&2
	exit 2
	;;
esac

cd "$(dirname "$0")/.."

if ! command -v protoc >/dev/null; then
	echo "genproto: protoc not found; install protoc $PROTOC_VERSION with: apt-get install protobuf-compiler" >&2
	exit 1
fi
have=$(protoc --version | awk '{print $2}')
if [ "$have" != "$PROTOC_VERSION" ]; then
	echo "genproto: protoc is $have, but the committed files come from protoc $PROTOC_VERSION (Debian 12's protobuf-compiler); another version writes other headers" >&2
	exit 1
fi

gen_version=$("$GO" list -m -f '{{.Version}}' google.golang.org/protobuf)
gen_bin="$TOOLS_DIR/protoc-gen-go-$gen_version/protoc-gen-go"
if [ "$("$gen_bin" --version 2>/dev/null || true)" != "protoc-gen-go $gen_version" ]; then
	echo "genproto: installing protoc-gen-go $gen_version into $(dirname "$gen_bin")" >&2
	mkdir -p "$(dirname "$gen_bin")"
	GOBIN="$(dirname "$gen_bin")" "$GO" install "google.golang.org/protobuf/cmd/protoc-gen-go@$gen_version"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

failed=0
mapfile -t protos < <(git ls-files '*.proto')
for proto in "${protos[@]}"; do
	dir=$(dirname "$proto")
	name=$(basename "$proto")
	mkdir -p "$out/$dir"
	# Run from the .proto's directory, so the header says "source: <name>".
	protoc --plugin=protoc-gen-go="$gen_bin" -I "$dir" \
		--go_out="$out/$dir" --go_opt=paths=source_relative "$name"
	generated="$out/$dir/${name%.proto}.pb.go"
	committed="$dir/${name%.proto}.pb.go"
	if [ "$mode" = generate ]; then
		cp "$generated" "$committed"
		echo "genproto: wrote $committed"
	elif ! cmp -s "$generated" "$committed"; then
		echo "genproto: $committed is not what protoc $PROTOC_VERSION and protoc-gen-go $gen_version generate from $proto:" >&2
		diff -u "$committed" "$generated" | head -40 >&2 || true
		failed=1
	fi
done

if [ "$mode" = check ]; then
	# A .pb.go whose .proto is gone would never be checked again.
	while read -r pb; do
		if [ ! -f "${pb%.pb.go}.proto" ]; then
			echo "genproto: $pb has no ${pb%.pb.go}.proto beside it" >&2
			failed=1
		fi
	done < <(git ls-files '*.pb.go')
	if [ "$failed" != 0 ]; then
		echo "genproto: generated code is out of date: run scripts/genproto.sh (make proto) and commit the result" >&2
		exit 1
	fi
	echo "genproto: ${#protos[@]} generated files match their .proto"
fi
