// Package alertmanager runs one Prometheus Alertmanager per tenant, built
// from the prometheus/alertmanager libraries, with each tenant's
// configuration polled from the alertmanager storage (package alertstore:
// the configs service over HTTP(S), a local directory or object storage).
// Each tenant with an Alertmanager gets its v2 API and Alertmanager's web
// UI (package ui) under /alertmanager/.
//
// With -alertmanager.sharding-enabled the tenants are spread over the
// alertmanager ring: each runs on its replicas, which exchange its silences
// and notification log over the alertmanagerpb gRPC service, and any
// instance answers any tenant's API by forwarding to them. Without sharding,
// -alertmanager.cluster.listen-address makes the alertmanagers members of
// Alertmanager's own gossip cluster (its cluster peer, copied into
// amcluster, over the gossip transport of pkg/kv/gossip with mutual TLS),
// which replicates every tenant's silences and notification log.
//
// It reaches the configs service only over HTTP(S), so it must not import
// pkg/configs, and it must never delete or overwrite files outside each
// tenant's own data directory.
package alertmanager
