#!/usr/bin/env bash
# Builds the MinIO server used by the S3 tests (pkg/storage/bucket) once per
# machine and prints the path of the binary.
#
# The binary goes into a cache directory outside the clone, one directory per
# pinned version, and is reused while present: a cold build takes about two
# and a half minutes on 2 cores, a warm run returns at once.
#
# Usage: scripts/minio.sh            # builds if needed, prints the binary path
#        export CORTEX_TEST_MINIO="$(scripts/minio.sh)"
set -euo pipefail

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
GO=${GO:-go}
DIR="${XDG_CACHE_HOME:-$HOME/.cache}/cortex-tools/minio-$MINIO_VERSION"
BIN="$DIR/minio"

if [ ! -x "$BIN" ]; then
	echo "building MinIO $MINIO_VERSION into $DIR (about 2.5 minutes cold)" >&2
	mkdir -p "$DIR"
	# Build into a temporary GOBIN and move the binary into place, so that an
	# interrupted build never leaves a half-written binary that looks usable.
	tmp="$(mktemp -d "$DIR/.build.XXXXXX")"
	trap 'rm -rf "$tmp"' EXIT
	GOBIN="$tmp" GOFLAGS=-mod=mod "$GO" install "github.com/minio/minio@$MINIO_VERSION"
	mv -f "$tmp/minio" "$BIN"
fi

echo "$BIN"
