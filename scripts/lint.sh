#!/usr/bin/env bash
# Runs golangci-lint (configured by .golangci.yml) over the module.
#
# The linter is installed with `go install` into a cache directory outside
# the clone and reused while it is the pinned version, so repeated runs do
# not rebuild it.
#
# Usage: scripts/lint.sh [extra golangci-lint run flags]
set -euo pipefail

GOLANGCI_LINT_VERSION=v2.15.0
GO=${GO:-go}
TOOLS_BIN="${XDG_CACHE_HOME:-$HOME/.cache}/cortex-tools/bin"
LINT="$TOOLS_BIN/golangci-lint"

installed_version() {
	# Prints e.g. "2.15.0", or nothing when the binary is missing or broken.
	"$LINT" version --short 2>/dev/null || true
}

if [ "$(installed_version)" != "${GOLANGCI_LINT_VERSION#v}" ]; then
	echo "installing golangci-lint $GOLANGCI_LINT_VERSION into $TOOLS_BIN" >&2
	mkdir -p "$TOOLS_BIN"
	GOBIN="$TOOLS_BIN" "$GO" install \
		"github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION"
fi

cd "$(dirname "$0")/.."
# golangci-lint refuses to start while another run holds its lock file;
# several checkouts on one machine may lint at once.
exec "$LINT" run --allow-parallel-runners "$@" ./...
