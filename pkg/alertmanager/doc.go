// Package alertmanager runs one Prometheus Alertmanager per tenant, built
// from the prometheus/alertmanager libraries, with each tenant's
// configuration polled from the configs service over HTTP(S).
//
// It reaches the configs service only over HTTP(S), so it must not import
// pkg/configs, and it must never delete or overwrite files outside each
// tenant's own data directory.
package alertmanager
