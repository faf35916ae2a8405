package bucket

import (
	"flag"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/caio/go-tdigest"
	"github.com/cristalhq/hedgedhttp"
)

// HedgedRequestConfig is Cortex's -<prefix>hedged-request.* block (the
// store-gateway's): a request to the bucket that takes longer than the
// given quantile of the latencies seen so far is sent again, up to
// max-requests in all, and the first answer wins. Thanos' exthttp hedging
// transport, on hedgedhttp and a t-digest.
type HedgedRequestConfig struct {
	Enabled     bool    `yaml:"enabled"`
	MaxRequests uint    `yaml:"max_requests"`
	Quantile    float64 `yaml:"quantile"`
}

// RegisterFlagsWithPrefix registers -<prefix>hedged-request.* with
// Cortex's defaults; prefix ends with a dot.
func (c *HedgedRequestConfig) RegisterFlagsWithPrefix(prefix string, f *flag.FlagSet) {
	f.BoolVar(&c.Enabled, prefix+"hedged-request.enabled", false, "If true, hedged requests are applied to object store calls. It can help with reducing tail latency.")
	f.UintVar(&c.MaxRequests, prefix+"hedged-request.max-requests", 3, "Maximum number of hedged requests allowed for each initial request. A high number can reduce latency but increase internal calls.")
	f.Float64Var(&c.Quantile, prefix+"hedged-request.quantile", 0.9, "It is used to calculate a latency threshold to trigger hedged requests. For example, additional requests are triggered when the initial request response time exceeds the 90th percentile.")
}

// Validate checks the quantile, as Cortex does; prefix ends with a dot.
func (c *HedgedRequestConfig) Validate(prefix string) error {
	if c.Quantile < 0 || c.Quantile > 1 {
		return fmt.Errorf("-%shedged-request.quantile: invalid hedged request quantile %v, it must be between 0 and 1", prefix, c.Quantile)
	}
	return nil
}

// RoundTripper returns the wrapper of a bucket client's transport that
// hedges its requests, nil when hedging is disabled.
func (c HedgedRequestConfig) RoundTripper() func(http.RoundTripper) http.RoundTripper {
	if !c.Enabled {
		return nil
	}
	return func(rt http.RoundTripper) http.RoundTripper {
		td, err := tdigest.New()
		if err != nil {
			// tdigest.New fails only on invalid options; none are given.
			panic(fmt.Sprintf("creating the hedged requests' t-digest: %v", err))
		}
		lt := &latencyTracker{next: rt, digest: td, quantile: c.Quantile, upto: int(c.MaxRequests)}
		client, err := hedgedhttp.New(hedgedhttp.Config{Transport: lt, Upto: int(c.MaxRequests), Next: lt.nextHedge})
		if err != nil {
			// hedgedhttp.New fails only on a negative delay or count.
			panic(fmt.Sprintf("creating the hedged requests' transport: %v", err))
		}
		return client
	}
}

// latencyTracker records each request's latency, from which the delay
// before a hedge is taken.
type latencyTracker struct {
	next     http.RoundTripper
	mu       sync.RWMutex
	digest   *tdigest.TDigest
	quantile float64
	upto     int
}

func (l *latencyTracker) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := l.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.digest.Add(float64(time.Since(start).Milliseconds())); err != nil {
		_ = resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// nextHedge is how many requests a call may make in all and how long to
// wait before each further one: the quantile of the latencies seen. Until
// a latency is known, requests are not hedged (the quantile of nothing
// would hedge at once).
func (l *latencyTracker) nextHedge() (int, time.Duration) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.digest.Count() == 0 {
		return 0, 0
	}
	return l.upto, time.Duration(l.digest.Quantile(l.quantile)) * time.Millisecond
}
