package storegateway

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errTooManyInflightRequests is Cortex's refusal of a Series call past
// -blocks-storage.bucket-store.max-inflight-requests.
var errTooManyInflightRequests = status.Error(codes.ResourceExhausted, "too many inflight requests in store gateway")

// The values of -blocks-storage.bucket-store.token-bucket-bytes-limiter.mode,
// Cortex's.
const (
	TokenBucketDisabled = "disabled"
	TokenBucketDryRun   = "dryrun"
	TokenBucketEnabled  = "enabled"
)

var tokenBucketModes = []string{TokenBucketDisabled, TokenBucketDryRun, TokenBucketEnabled}

const tokenBucketPrefix = "blocks-storage.bucket-store.token-bucket-bytes-limiter"

// TokenBucketBytesLimiterConfig is Cortex's
// -blocks-storage.bucket-store.token-bucket-bytes-limiter.* block.
type TokenBucketBytesLimiterConfig struct {
	Mode                    string `yaml:"mode"`
	InstanceTokenBucketSize int64  `yaml:"instance_token_bucket_size"`
	UserTokenBucketSize     int64  `yaml:"user_token_bucket_size"`
	RequestTokenBucketSize  int64  `yaml:"request_token_bucket_size"`
}

// RegisterFlags registers the limiter's flags with Cortex's defaults.
func (c *TokenBucketBytesLimiterConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Mode, tokenBucketPrefix+".mode", TokenBucketDisabled, "Token bucket bytes limiter mode. Supported values are: disabled, dryrun, enabled")
	f.Int64Var(&c.InstanceTokenBucketSize, tokenBucketPrefix+".instance-token-bucket-size", 820<<20, "Instance token bucket size")
	f.Int64Var(&c.UserTokenBucketSize, tokenBucketPrefix+".user-token-bucket-size", 615<<20, "User token bucket size")
	f.Int64Var(&c.RequestTokenBucketSize, tokenBucketPrefix+".request-token-bucket-size", 4<<20, "Request token bucket size")
}

// Validate checks the mode and, when the limiter is on, the sizes.
func (c *TokenBucketBytesLimiterConfig) Validate() error {
	if !slices.Contains(tokenBucketModes, c.Mode) {
		return fmt.Errorf("-%s.mode: invalid token bucket bytes limiter mode %q (supported: disabled, dryrun, enabled)", tokenBucketPrefix, c.Mode)
	}
	if c.Mode == TokenBucketDisabled {
		return nil
	}
	for _, s := range []struct {
		name string
		v    int64
	}{
		{"instance-token-bucket-size", c.InstanceTokenBucketSize},
		{"user-token-bucket-size", c.UserTokenBucketSize},
		{"request-token-bucket-size", c.RequestTokenBucketSize},
	} {
		if s.v <= 0 {
			return fmt.Errorf("-%s.%s must be positive", tokenBucketPrefix, s.name)
		}
	}
	return nil
}

// Token factors by kind of data touched: Cortex's defaults of its hidden
// -token-bucket-bytes-limiter.*-token-factor flags. The index is local, so
// nothing here is "fetched" but chunks, whose fetched factor is 0 in
// Cortex: chunks count once, as touched.
const (
	touchedPostingsTokenFactor = 5
	touchedSeriesTokenFactor   = 25
	touchedChunksTokenFactor   = 1
	// postingBytes is the size Thanos charges per posting: a 4-byte
	// series reference in the index's postings lists.
	postingBytes = 4
)

// tokenBucket is Cortex's util.TokenBucket: it refills its whole capacity
// every second, and a retrieval always takes its tokens, going negative
// when there are not enough: what is left says whether the caller may go
// on.
type tokenBucket struct {
	mu         sync.Mutex
	remaining  int64
	capacity   int64
	lastRefill time.Time
	gauge      prometheus.Gauge // nil: none
}

func newTokenBucket(capacity int64, gauge prometheus.Gauge) *tokenBucket {
	if gauge != nil {
		gauge.Set(float64(capacity))
	}
	return &tokenBucket{remaining: capacity, capacity: capacity, lastRefill: time.Now(), gauge: gauge}
}

// retrieve takes n tokens and returns what remains.
func (t *tokenBucket) retrieve(n int64) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	t.remaining = min(t.capacity, t.remaining+int64(now.Sub(t.lastRefill).Seconds()*float64(t.capacity)))
	t.lastRefill = now
	t.remaining -= n
	if t.gauge != nil {
		t.gauge.Set(float64(t.remaining))
	}
	return t.remaining
}

// limits are the store's bounds on its queries, shared by every tenant:
// the Series gate and in-flight count, the chunk bytes held, and the token
// buckets.
type limits struct {
	cfg    Config
	logger *slog.Logger

	// gate holds a slot per Series call running; nil: no bound.
	gate     chan struct{}
	inflight atomic.Int64
	// chunkBytes are the bytes of chunk buffers held by open queriers.
	chunkBytes atomic.Int64

	instanceBucket *tokenBucket // nil: the limiter is disabled
	userMu         sync.Mutex
	userBuckets    map[string]*tokenBucket

	gateWaiting, gateRunning prometheus.Gauge
	gateDuration             prometheus.Histogram
	limiterFailures          prometheus.Counter
}

func newLimits(cfg Config, logger *slog.Logger, reg prometheus.Registerer) *limits {
	f := promauto.With(reg)
	l := &limits{
		cfg:         cfg,
		logger:      logger,
		userBuckets: map[string]*tokenBucket{},
		gateWaiting: f.NewGauge(prometheus.GaugeOpts{
			Name: "cortex_bucket_stores_gate_queries_waiting",
			Help: "Number of queries waiting for the gate (-blocks-storage.bucket-store.max-concurrent).",
		}),
		gateRunning: f.NewGauge(prometheus.GaugeOpts{
			Name: "cortex_bucket_stores_gate_queries_in_flight",
			Help: "Number of queries that are currently in flight.",
		}),
		gateDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "cortex_bucket_stores_gate_duration_seconds",
			Help:    "How many seconds it took for queries to wait at the gate.",
			Buckets: []float64{0.01, 0.1, 0.3, 0.6, 1, 3, 6, 10, 15, 20, 30, 45, 60, 120, 240, 360, 720},
		}),
		limiterFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_bucket_store_token_bucket_bytes_limiter_failures_total",
			Help: "Number of requests refused by the token bucket bytes limiter (-blocks-storage.bucket-store.token-bucket-bytes-limiter.*).",
		}),
	}
	f.NewGauge(prometheus.GaugeOpts{
		Name: "cortex_bucket_stores_gate_queries_max",
		Help: "Maximum number of concurrent queries.",
	}).Set(float64(cfg.MaxConcurrent))
	for name, v := range map[string]float64{
		"max_inflight_requests": float64(cfg.MaxInflightRequests),
		"max_concurrent":        float64(cfg.MaxConcurrent),
		"max_chunk_pool_bytes":  float64(cfg.MaxChunkPoolBytes),
	} {
		f.NewGauge(prometheus.GaugeOpts{
			Name:        "cortex_storegateway_instance_limits",
			Help:        "Instance limits used by this store gateway.",
			ConstLabels: prometheus.Labels{"limit": name},
		}).Set(v)
	}
	if cfg.MaxConcurrent > 0 {
		l.gate = make(chan struct{}, cfg.MaxConcurrent)
	}
	if cfg.TokenBucketBytesLimiter.Mode != TokenBucketDisabled {
		l.instanceBucket = newTokenBucket(cfg.TokenBucketBytesLimiter.InstanceTokenBucketSize, f.NewGauge(prometheus.GaugeOpts{
			Name: "cortex_bucket_stores_instance_token_bucket_remaining",
			Help: "Number of tokens left in instance token bucket.",
		}))
	}
	return l
}

// startSeries admits a Series call: refused past
// -blocks-storage.bucket-store.max-inflight-requests (queued calls count),
// then queued until one of -blocks-storage.bucket-store.max-concurrent
// slots is free or ctx ends. done releases what it took.
func (l *limits) startSeries(ctx context.Context) (done func(), err error) {
	if max := int64(l.cfg.MaxInflightRequests); max > 0 {
		if l.inflight.Add(1) > max {
			l.inflight.Add(-1)
			return nil, errTooManyInflightRequests
		}
	} else {
		l.inflight.Add(1)
	}
	if l.gate == nil {
		return func() { l.inflight.Add(-1) }, nil
	}
	start := time.Now()
	l.gateWaiting.Inc()
	select {
	case l.gate <- struct{}{}:
		l.gateWaiting.Dec()
	case <-ctx.Done():
		l.gateWaiting.Dec()
		l.inflight.Add(-1)
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	l.gateDuration.Observe(time.Since(start).Seconds())
	l.gateRunning.Inc()
	return func() {
		l.gateRunning.Dec()
		<-l.gate
		l.inflight.Add(-1)
	}, nil
}

// userBucket is the tenant's token bucket, made on first use.
func (l *limits) userBucket(tenant string) *tokenBucket {
	l.userMu.Lock()
	defer l.userMu.Unlock()
	b := l.userBuckets[tenant]
	if b == nil {
		b = newTokenBucket(l.cfg.TokenBucketBytesLimiter.UserTokenBucketSize, nil)
		l.userBuckets[tenant] = b
	}
	return b
}

// newRequest returns the bounds of one request of tenant: its
// -store-gateway.max-downloaded-bytes-per-request (0: none) and its token
// buckets.
func (l *limits) newRequest(tenant string, maxDownloaded int64) *request {
	r := &request{tenant: tenant, maxDownloaded: maxDownloaded, limits: l}
	if l.instanceBucket != nil {
		r.requestBucket = newTokenBucket(l.cfg.TokenBucketBytesLimiter.RequestTokenBucketSize, nil)
		r.userBucket = l.userBucket(tenant)
	}
	return r
}

// request counts what one request touches and downloads, and refuses it
// once past a bound.
type request struct {
	tenant        string
	limits        *limits
	maxDownloaded int64
	downloaded    atomic.Int64

	requestBucket, userBucket *tokenBucket // nil: the limiter is disabled
	failedOnce                sync.Once

	// stats are the call's statistics (query_stats.go).
	stats requestStats
}

type requestKey struct{}

// withRequest carries r to the block reads of ctx's queries.
func withRequest(ctx context.Context, r *request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}

func requestOf(ctx context.Context) *request {
	r, _ := ctx.Value(requestKey{}).(*request)
	return r
}

// errBytesLimit is Cortex's refusal of a request that downloads more than
// -store-gateway.max-downloaded-bytes-per-request.
var errBytesLimit = errors.New("exceeded bytes limit")

// download accounts n bytes about to be read from the bucket.
func (r *request) download(n int64) error {
	if r == nil {
		return nil
	}
	got := r.downloaded.Add(n)
	if r.maxDownloaded > 0 && got > r.maxDownloaded {
		return status.Errorf(codes.ResourceExhausted, "tenant %s: %v while fetching chunks: limit %d violated (got %d) (-store-gateway.max-downloaded-bytes-per-request)", r.tenant, errBytesLimit, r.maxDownloaded, got)
	}
	return r.touch(n * touchedChunksTokenFactor)
}

// touchIndex accounts the postings and series a Select read from the index.
func (r *request) touchIndex(postings, seriesBytes int64) error {
	if r == nil {
		return nil
	}
	return r.touch(postings*postingBytes*touchedPostingsTokenFactor + seriesBytes*touchedSeriesTokenFactor)
}

// tokenBucketErr is Cortex's text for a request the token bucket bytes
// limiter refuses.
const tokenBucketErr = "store gateway resource exhausted"

// touch takes tokens from the request's, the tenant's and the instance's
// buckets, as Cortex's limiter does: a request within its own bucket goes
// on; past it, it is refused (in dryrun mode only logged) when it needs
// more than the tenant's or the instance's whole bucket (422 in Cortex:
// InvalidArgument here) or when either is exhausted (429: ResourceExhausted).
func (r *request) touch(tokens int64) error {
	if r.requestBucket == nil || tokens == 0 {
		return nil
	}
	l := r.limits
	reqLeft := r.requestBucket.retrieve(tokens)
	userLeft := r.userBucket.retrieve(tokens)
	instanceLeft := l.instanceBucket.retrieve(tokens)
	if reqLeft >= 0 {
		return nil
	}
	code := codes.OK
	switch {
	case tokens > r.userBucket.capacity || tokens > l.instanceBucket.capacity:
		code = codes.InvalidArgument
	case userLeft < 0 || instanceLeft < 0:
		code = codes.ResourceExhausted
	}
	if code == codes.OK {
		return nil
	}
	if l.cfg.TokenBucketBytesLimiter.Mode == TokenBucketDryRun {
		l.logger.Warn(tokenBucketErr, "user", r.tenant, "tokens", tokens, "code", code.String())
		return nil
	}
	r.failedOnce.Do(l.limiterFailures.Inc)
	return status.Errorf(code, "%s (tenant %s; -%s.*)", tokenBucketErr, r.tenant, tokenBucketPrefix)
}

// errPoolExhausted is Thanos' refusal of a chunk buffer past the pool's
// bound.
var errPoolExhausted = errors.New("pool exhausted")

// heldChunkBytes counts the chunk buffers one querier holds, within the
// store's -blocks-storage.bucket-store.max-chunk-pool-bytes.
type heldChunkBytes struct {
	limits *limits
	n      atomic.Int64
}

// take accounts a buffer of n bytes, refused when the store's queriers
// would hold more than -blocks-storage.bucket-store.max-chunk-pool-bytes.
func (h *heldChunkBytes) take(n int64) error {
	if h == nil || h.limits == nil {
		return nil
	}
	total := h.limits.chunkBytes.Add(n)
	if max := h.limits.cfg.MaxChunkPoolBytes; max > 0 && uint64(total) > max {
		h.limits.chunkBytes.Add(-n)
		return fmt.Errorf("allocate chunk bytes: %w (the store-gateway's queries hold %d bytes of chunks; -blocks-storage.bucket-store.max-chunk-pool-bytes=%d)", errPoolExhausted, total-n, max)
	}
	h.n.Add(n)
	return nil
}

// release gives back every buffer accounted.
func (h *heldChunkBytes) release() {
	if h == nil || h.limits == nil {
		return
	}
	h.limits.chunkBytes.Add(-h.n.Swap(0))
}
