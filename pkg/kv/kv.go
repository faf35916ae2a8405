// Package kv builds the clients of the key-value stores that hold the rings:
// this project's gossip store (pkg/kv/gossip) for -ring.store=memberlist,
// dskit's clients for consul, etcd, inmemory and multi.
//
// It only chooses and builds clients: it holds no ring state and must not
// import the components that use the rings.
package kv

import (
	"log/slog"

	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/codec"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/kv/gossip"
	"github.com/cortex-tls/cortex/pkg/util/kitlog"
)

// NewClient returns a client of the store cfg names, with values encoded by
// c. gossipKV is the process's gossip store, required for memberlist; reg
// receives the client's metrics under the kv_name label name.
func NewClient(cfg kv.Config, c codec.Codec, gossipKV *gossip.KV, name string, reg prometheus.Registerer, logger *slog.Logger) (kv.Client, error) {
	if cfg.Store == "memberlist" {
		return gossipKV.Client(c), nil
	}
	return kv.NewClient(cfg, c, kv.RegistererWithKVName(reg, name), kitlog.New(logger))
}
