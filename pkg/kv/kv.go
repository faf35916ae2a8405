// Package kv builds the clients of the key-value stores that hold the rings:
// this project's gossip store (pkg/kv/gossip) for -ring.store=memberlist,
// dskit's clients for consul, etcd, inmemory and multi, and etcd with this
// project's TLS (pkg/tlsconfig) for the stores built WithTLS.
//
// It only chooses and builds clients: it holds no ring state and must not
// import the components that use the rings.
package kv

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/codec"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/kv/gossip"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/kitlog"
)

// Option changes how NewClient builds a client.
type Option func(*options)

type options struct {
	tls        *tlsconfig.Loader
	flagPrefix string
}

// WithTLS builds an etcd store's client with this project's TLS, loaded by
// l from the -<flagPrefix>etcd.tls-* flags (flagPrefix as given to
// kv.Config.RegisterFlagsWithPrefix, "distributor.ha-tracker.").
func WithTLS(l *tlsconfig.Loader, flagPrefix string) Option {
	return func(o *options) { o.tls, o.flagPrefix = l, flagPrefix }
}

// NewClient returns a client of the store cfg names, with values encoded by
// c. gossipKV is the process's gossip store, required for memberlist; reg
// receives the client's metrics under the kv_name label name.
func NewClient(cfg kv.Config, c codec.Codec, gossipKV *gossip.KV, name string, reg prometheus.Registerer, logger *slog.Logger, opts ...Option) (kv.Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case cfg.Store == "memberlist":
		return gossipKV.Client(c), nil
	case cfg.Store == "multi" && (cfg.Multi.Primary == "memberlist" || cfg.Multi.Secondary == "memberlist"):
		return newMultiWithGossip(cfg, c, gossipKV, name, reg, logger, opts...)
	case cfg.Store == "etcd" && o.tls != nil:
		client, err := newEtcdClient(cfg.Etcd, c, o.flagPrefix, o.tls, logger)
		if err != nil {
			return nil, err
		}
		var kvc kv.Client = client
		if cfg.Prefix != "" {
			kvc = kv.PrefixClient(kvc, cfg.Prefix)
		}
		return newInstrumented(kvc, "etcd", kv.RegistererWithKVName(reg, name)), nil
	}
	return kv.NewClient(cfg, c, kv.RegistererWithKVName(reg, name), kitlog.New(logger))
}

// newMultiWithGossip builds the multi store when the gossip store is one of
// its two: each store is built as it would be alone (same keys, so the
// primary can be switched either way), then paired.
func newMultiWithGossip(cfg kv.Config, c codec.Codec, gossipKV *gossip.KV, name string, reg prometheus.Registerer, logger *slog.Logger, opts ...Option) (kv.Client, error) {
	m := cfg.Multi
	switch {
	case m.Primary == m.Secondary:
		return nil, fmt.Errorf("the multi KV store's primary and secondary stores must differ, both are %q", m.Primary)
	case m.Primary == "multi" || m.Secondary == "multi":
		return nil, errors.New("the multi KV store's primary and secondary stores cannot be multi stores")
	case m.Primary == "" || m.Secondary == "":
		return nil, errors.New("the multi KV store needs both a primary and a secondary store")
	}
	stores := make([]kv.Client, 2)
	for i, store := range []string{m.Primary, m.Secondary} {
		one := cfg
		one.Store = store
		client, err := NewClient(one, c, gossipKV, name, reg, logger, opts...)
		if err != nil {
			return nil, fmt.Errorf("the multi KV store's %s store %q: %w", []string{"primary", "secondary"}[i], store, err)
		}
		stores[i] = client
	}
	return newMultiClient(m, stores[0], stores[1], kv.RegistererWithKVName(reg, name), logger.With("kv", name)), nil
}
