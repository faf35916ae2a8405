# Two entry points, as README.md says: `make run` and `make test`.
GO ?= go
CERTS ?= dev-certs

.PHONY: run test build bench

build:
	$(GO) build -o cortex ./cmd/cortex

# Creates a private CA and certificates on first use, then runs every
# component in one process with mutual TLS on loopback.
run: build
	@test -f $(CERTS)/root.crt || ./cortex certs generate -out-dir $(CERTS) -leaves server,client
	./cortex -config.file=docs/examples/single-process-mtls.yaml

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# Measures ingest and query on loopback and rewrites docs/benchmarks.md.
bench: build
	$(GO) run ./cmd/benchreport -binary ./cortex -out docs/benchmarks.md
