# Two entry points, as README.md says: `make run` and `make test`.
GO ?= go
CERTS ?= dev-certs

.PHONY: run test build bench bench-cortex lint proto check-proto test-count3 bench-blocks testssl fuzz cluster

# The version, branch, build user and date go into Prometheus' version
# package, as Cortex stamps them; the revision and commit time (the
# revision with -modified for a tree with uncommitted changes) come from
# Go's VCS stamp, which -buildvcs=auto asks for even where GOFLAGS has
# -buildvcs=false. BINARY is where the binary goes.
BINARY ?= cortex
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
GIT_BRANCH ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
BUILD_USER ?= $(shell whoami)@$(shell hostname)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
VERSION_PKG := github.com/prometheus/common/version
LDFLAGS := -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Branch=$(GIT_BRANCH) -X $(VERSION_PKG).BuildUser=$(BUILD_USER) -X $(VERSION_PKG).BuildDate=$(BUILD_DATE)

build:
	$(GO) build -buildvcs=auto -ldflags '$(LDFLAGS)' -o $(BINARY) ./cmd/cortex

# Creates a private CA and certificates on first use, then runs every
# component in one process with mutual TLS on loopback.
run: build
	@test -f $(CERTS)/root.crt || ./cortex certs generate -out-dir $(CERTS) -leaves server,client
	./cortex -config.file=docs/examples/single-process-mtls.yaml

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# A mutual-TLS cluster on loopback, one process per component, each with
# its own certificate (docs/multi-process.md); Ctrl-C stops every process.
cluster: build
	CORTEX=$(BINARY) bash scripts/cluster.sh

# Every test three times, to find flakes (by hand: about three times make test).
test-count3:
	$(GO) test -race -count=3 ./...

# golangci-lint v2.15.0 (.golangci.yml), installed into the user cache on first use.
lint:
	./scripts/lint.sh

# Regenerates every .pb.go from its .proto with the pinned protoc and protoc-gen-go.
proto:
	./scripts/genproto.sh

# Fails when a committed .pb.go differs from what its .proto generates.
check-proto:
	./scripts/genproto.sh --check

# Measures ingest and query on loopback and rewrites docs/benchmarks.md.
bench: build
	$(GO) run ./cmd/benchreport -binary ./cortex -out docs/benchmarks.md

# Measures this system against the original Cortex 1.21.1 side by side and
# rewrites the "Against Cortex 1.21.1" section of docs/benchmarks.md; the
# original is built once into ~/.cache/cortex-tools (scripts/cortex-original.sh).
bench-cortex: build
	original=$$(GO=$(GO) scripts/cortex-original.sh) && \
		$(GO) run ./cmd/benchreport -binary $(BINARY) -baseline "$$original" -rounds 5 -out docs/benchmarks.md

# The figures of docs/blocks-storage.md: a 24h range query answered by the
# store-gateway and by an ingester, side by side, then the store-gateway's
# memory per series (one op is one load of a 1M-series block: 1x suffices).
bench-blocks:
	$(GO) test -run '^$$' -bench 'BenchmarkRangeQuery24h' -benchtime 5x -count 5 ./pkg/querier
	$(GO) test -run '^$$' -bench 'BenchmarkStoreGatewayMemory' -benchtime 1x -count 3 ./pkg/storegateway

# testssl.sh against the HTTP, gRPC and gossip ports of a mutual-TLS
# -target=all (about 3 minutes on 2 cores); fails on a MEDIUM or worse finding.
testssl:
	bash scripts/testssl.sh

# The push decoders' fuzz targets, FUZZTIME each (default 2m).
FUZZTIME ?= 2m
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodePush$$' -fuzztime $(FUZZTIME) ./pkg/distributor
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeV1$$' -fuzztime $(FUZZTIME) ./pkg/util/remotewrite
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeV2$$' -fuzztime $(FUZZTIME) ./pkg/util/remotewrite
