package shardring

import (
	"context"
	"math"
	"slices"
	"time"

	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
)

// detailedMetricsTimeout bounds the read of the ring a scrape makes: a KV
// store that does not answer (consul, etcd) leaves the metrics out rather
// than hold the scrape.
const detailedMetricsTimeout = 5 * time.Second

// RegisterDetailedMetrics exports Cortex's detailed metrics of the ring
// named name, stored under key in store: each member's token count
// (ring_tokens_owned) and share of the token space
// (ring_member_ownership_percent, 0 to 1), labelled member and name.
// dskit's ring client no longer has them; they are computed from the
// ring's description when scraped.
func RegisterDetailedMetrics(name, key string, store kv.Client, reg prometheus.Registerer) error {
	c := &detailedMetrics{
		key:   key,
		store: store,
		ownership: prometheus.NewDesc("ring_member_ownership_percent",
			"The percent ownership of the ring by member", []string{"member"}, prometheus.Labels{"name": name}),
		tokens: prometheus.NewDesc("ring_tokens_owned",
			"The number of tokens in the ring owned by the member", []string{"member"}, prometheus.Labels{"name": name}),
	}
	return reg.Register(c)
}

type detailedMetrics struct {
	key               string
	store             kv.Client
	ownership, tokens *prometheus.Desc
}

func (c *detailedMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.ownership
	ch <- c.tokens
}

func (c *detailedMetrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), detailedMetricsTimeout)
	defer cancel()
	v, err := c.store.Get(ctx, c.key)
	if err != nil {
		return
	}
	desc, ok := v.(*ring.Desc)
	if !ok || desc == nil {
		return
	}
	numTokens, owned := countTokens(desc)
	for id, n := range numTokens {
		ch <- prometheus.MustNewConstMetric(c.ownership, prometheus.GaugeValue, float64(owned[id])/float64(math.MaxUint32+1), id)
		ch <- prometheus.MustNewConstMetric(c.tokens, prometheus.GaugeValue, float64(n), id)
	}
}

// countTokens is Cortex's: each token owns the range up to the next one
// (the last wraps around to the first), and members without tokens own
// nothing.
func countTokens(desc *ring.Desc) (numTokens map[string]uint32, owned map[string]int64) {
	type tokenOwner struct {
		token uint32
		id    string
	}
	var all []tokenOwner
	numTokens, owned = map[string]uint32{}, map[string]int64{}
	for id, inst := range desc.Ingesters {
		numTokens[id], owned[id] = 0, 0
		for _, t := range inst.Tokens {
			all = append(all, tokenOwner{t, id})
		}
	}
	slices.SortFunc(all, func(a, b tokenOwner) int {
		switch {
		case a.token < b.token:
			return -1
		case a.token > b.token:
			return 1
		}
		return 0
	})
	for i, t := range all {
		var diff int64
		if i+1 == len(all) {
			diff = int64(math.MaxUint32) - int64(t.token) + int64(all[0].token)
		} else {
			diff = int64(all[i+1].token) - int64(t.token)
		}
		numTokens[t.id]++
		owned[t.id] += diff
	}
	return numTokens, owned
}
