#!/usr/bin/env bash
# Builds the original Cortex, v1.21.1, from its module source and prints the
# binary's path: `make bench-cortex` measures this system against it.
#
# `go install github.com/cortexproject/cortex/cmd/cortex@v1.21.1` is refused
# (its go.mod has replace directives), so the module source is copied to a
# writable directory and built there as the main module. It is built as
# Cortex's release Makefile builds it: static, tags netgo and slicelabels.
# The tag matters: Cortex converts its label slices to Prometheus labels with
# unsafe casts that assume slicelabels, and Prometheus' default string labels
# would misread them. The binary is cached outside the clone and reused.
#
# Usage: scripts/cortex-original.sh
set -euo pipefail

CORTEX_VERSION=v1.21.1
GO=${GO:-go}
OUT_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/cortex-tools/cortex-$CORTEX_VERSION"
OUT="$OUT_DIR/cortex"

if [ -x "$OUT" ]; then
	echo "$OUT"
	exit 0
fi

cd "$(dirname "$0")/.."
MODULE=github.com/cortexproject/cortex@$CORTEX_VERSION
SRC="$("$GO" env GOMODCACHE)/$MODULE"
if [ ! -d "$SRC" ]; then
	GOFLAGS=-mod=mod "$GO" mod download "$MODULE" >&2
fi

WORK=$(mktemp -d)
trap 'chmod -R u+w "$WORK"; rm -rf "$WORK"' EXIT
cp -r "$SRC" "$WORK/cortex"
chmod -R u+w "$WORK/cortex"
mkdir -p "$OUT_DIR"
echo "building Cortex $CORTEX_VERSION into $OUT (several minutes on 2 cores)" >&2
(
	cd "$WORK/cortex"
	CGO_ENABLED=0 GOFLAGS=-mod=mod "$GO" build -tags "netgo slicelabels" \
		-ldflags "-X main.Version=$(cat VERSION) -X main.Branch=release-1.21 -X main.Revision=$CORTEX_VERSION -extldflags -static -s -w" \
		-o "$OUT.tmp" ./cmd/cortex
)
mv "$OUT.tmp" "$OUT"
echo "$OUT"
