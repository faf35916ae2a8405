// Package distributor receives Prometheus remote-write requests, validates
// them against each tenant's limits and writes every series to the
// ingesters that own it on the ring, replicated and acknowledged by a
// quorum.
//
// It stores no series: it must not keep samples or labels past a request,
// and it reaches ingesters only through pkg/ingester/client, never by
// importing pkg/ingester.
package distributor

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"

	"github.com/cortex-tls/cortex/pkg/ha"
	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/remotewrite"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// Config is the distributor's own configuration: -distributor.* flags that
// are neither per-tenant limits (validation.Limits) nor ring settings.
type Config struct {
	MaxRecvMsgSize   int           `yaml:"max_recv_msg_size"`
	RemoteTimeout    time.Duration `yaml:"remote_timeout"`
	ShardByAllLabels bool          `yaml:"shard_by_all_labels"`
	// ShardingStrategy is "default" (every ingester of the ring may hold a
	// tenant's series) or "shuffle-sharding" (a tenant's series go to its
	// -distributor.ingestion-tenant-shard-size ingesters only).
	ShardingStrategy string `yaml:"sharding_strategy"`
	// RemoteWriteV2Enabled accepts remote write 2.0 requests; without it
	// they get 415, as from a Prometheus receiver that does not accept
	// io.prometheus.write.v2.Request.
	RemoteWriteV2Enabled bool `yaml:"remote_writev2_enabled"`
	// AcceptUnknownRemoteWriteContentType reads a push whose Content-Type
	// is neither remote write's as 1.0, as Cortex before 1.21 did.
	AcceptUnknownRemoteWriteContentType bool `yaml:"accept_unknown_remote_write_content_type"`

	OTLPMaxRecvMsgSize        int        `yaml:"otlp_max_recv_msg_size"`
	PromoteResourceAttributes []string   `yaml:"promote_resource_attributes"`
	OTLP                      OTLPConfig `yaml:"otlp"`
	// HATracker deduplicates the samples of HA Prometheus pairs.
	HATracker ha.Config `yaml:"ha_tracker"`
	// DistributorRing is the ring the distributors join with the global
	// ingestion rate strategy.
	DistributorRing RingConfig `yaml:"ring"`
	// InstanceLimits are -distributor.instance-limits.*.
	InstanceLimits InstanceLimits `yaml:"instance_limits"`

	// ExtendWrites writes a series to one more ingester for each of its
	// ingesters that is not ACTIVE (joining or leaving the ring).
	ExtendWrites bool `yaml:"extend_writes"`
	// NumPushWorkers is how many goroutines run the calls to the
	// ingesters; 0 starts one per call.
	NumPushWorkers int `yaml:"num_push_workers"`
	// ClientCleanupPeriod is how often the pool of ingester connections
	// closes those of ingesters gone from the ring and health-checks the
	// others.
	ClientCleanupPeriod time.Duration `yaml:"client_cleanup_period"`
	// SignWriteRequests signs each push to an ingester, which then
	// refuses one whose content does not match.
	SignWriteRequests bool `yaml:"sign_write_requests"`
	// SignWriteRequestsKeys authenticate the PushStreams with
	// SignWriteRequests: the first signs, any is accepted.
	SignWriteRequestsKeys client.SigningKeys `yaml:"sign_write_requests_keys"`
	// UseStreamPush sends the pushes over one PushStream per ingester.
	UseStreamPush bool `yaml:"use_stream_push"`
	// ExtraQueryDelay is how long the queriers wait before asking the
	// ingesters beyond those a quorum needs.
	ExtraQueryDelay time.Duration `yaml:"extra_queue_delay"`
}

// RegisterFlags registers the -distributor.* flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&c.MaxRecvMsgSize, "distributor.max-recv-msg-size", 100<<20, "Largest remote-write request accepted, in bytes, both as received and once decompressed; larger ones get 413.")
	f.DurationVar(&c.RemoteTimeout, "distributor.remote-timeout", 2*time.Second, "Timeout of a push to the ingesters.")
	f.BoolVar(&c.ShardByAllLabels, "distributor.shard-by-all-labels", true, "Place each series on the ring by a hash of the tenant and all its labels. False places all series of a metric name on the same ingesters, which spreads load badly.")
	f.StringVar(&c.ShardingStrategy, "distributor.sharding-strategy", ShardingStrategyDefault, "How a tenant's series are placed on the ingester ring: "+ShardingStrategyDefault+" spreads them over every ingester; "+ShardingStrategyShuffle+" keeps them on the tenant's shuffle shard of -distributor.ingestion-tenant-shard-size ingesters (the queriers read only those).")
	f.BoolVar(&c.AcceptUnknownRemoteWriteContentType, "distributor.accept-unknown-remote-write-content-type", false, "If true, treat requests with unknown or invalid Content-Type header as remote write v1 (legacy behavior). If false, return 415 Unsupported Media Type for non-standard content types.")
	f.BoolVar(&c.RemoteWriteV2Enabled, "distributor.remote-writev2-enabled", true, "Accept Prometheus remote write 2.0 requests (Content-Type application/x-protobuf;proto=io.prometheus.write.v2.Request) on /api/v1/push. False answers them with 415, which tells a 2.0 sender to fall back to 1.0.")
	c.registerOTLPFlags(f)
	c.HATracker.RegisterFlags(f)
	c.DistributorRing.RegisterFlags(f)
	c.InstanceLimits.RegisterFlags(f)
	f.BoolVar(&c.ExtendWrites, "distributor.extend-writes", true, "Try writing to an additional ingester in the presence of an ingester not in the ACTIVE state (joining or leaving the ring), so that every series still reaches the replication factor's ACTIVE ingesters. Disable it along with -ingester.unregister-on-shutdown=false to not spread samples to extra ingesters during rolling restarts with consistent naming.")
	f.IntVar(&c.NumPushWorkers, "distributor.num-push-workers", 0, "Number of goroutines kept to run the calls of pushes to the ingesters; a call finding them all busy runs on a new goroutine (counted in cortex_worker_pool_fallback_total). 0 starts a goroutine for each call.")
	f.BoolVar(&c.SignWriteRequests, "distributor.sign-write-requests", false, "Sign each push to an ingester (x-req-signature: a hash of the tenant, the series' labels and exemplar labels and the metadata), as Cortex does; an ingester of a process with this flag refuses a push without a signature, or whose content does not match it. Set it on the distributors and the ingesters alike.")
	f.Var(&c.SignWriteRequestsKeys, "distributor.sign-write-requests-keys", "Comma-separated HMAC-SHA256 keys authenticating the PushStreams of -distributor.use-stream-push, as Cortex's: the distributor signs each stream (x-stream-signature) with the first key, and an ingester refuses a stream signed with none of its keys. Only with -distributor.sign-write-requests. To change keys without downtime: give the ingesters 'newkey,oldkey', then the distributors 'newkey,oldkey', then both 'newkey'.")
	f.BoolVar(&c.UseStreamPush, "distributor.use-stream-push", false, "Send the pushes to each ingester over one long-lived bidirectional gRPC stream (PushStream) instead of a Push call each, many pushes in flight on it and each answer matched to its push. Each message names its tenant, which the ingester checks as it checks a Push call's.")
	f.DurationVar(&c.ExtraQueryDelay, "distributor.extra-query-delay", 0, "Time to wait before sending more than the minimum successful query requests: the queriers ask the ingesters a quorum needs at once, and the others after this delay, or as soon as one fails. When positive, it replaces -querier.minimize-ingester-requests and its hedging delay. 0 asks as those say.")
	f.DurationVar(&c.ClientCleanupPeriod, "distributor.client-cleanup-period", 15*time.Second, "How often the distributor's pool of ingester connections closes those of ingesters gone from the ring and, with -distributor.health-check-ingesters, health-checks the others (the distributor's own -ingester.client.health-check-interval).")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MaxRecvMsgSize <= 0 || c.MaxRecvMsgSize > 1<<30 {
		return fmt.Errorf("-distributor.max-recv-msg-size must be between 1 and 1073741824 (1 GiB), got %d", c.MaxRecvMsgSize)
	}
	if c.RemoteTimeout <= 0 {
		return fmt.Errorf("-distributor.remote-timeout must be positive, got %s", c.RemoteTimeout)
	}
	if c.NumPushWorkers < 0 {
		return fmt.Errorf("-distributor.num-push-workers must not be negative (0 starts a goroutine per call), got %d", c.NumPushWorkers)
	}
	if c.ClientCleanupPeriod <= 0 {
		return fmt.Errorf("-distributor.client-cleanup-period must be positive, got %s", c.ClientCleanupPeriod)
	}
	if c.ExtraQueryDelay < 0 {
		return fmt.Errorf("-distributor.extra-query-delay must not be negative, got %s", c.ExtraQueryDelay)
	}
	for i, k := range c.SignWriteRequestsKeys {
		if k == "" {
			return fmt.Errorf("-distributor.sign-write-requests-keys: key %d of %d is empty", i+1, len(c.SignWriteRequestsKeys))
		}
	}
	if c.ShardingStrategy != ShardingStrategyDefault && c.ShardingStrategy != ShardingStrategyShuffle {
		return fmt.Errorf("-distributor.sharding-strategy must be %q or %q, got %q", ShardingStrategyDefault, ShardingStrategyShuffle, c.ShardingStrategy)
	}
	if err := c.validateOTLP(); err != nil {
		return err
	}
	if err := c.HATracker.Validate(); err != nil {
		return err
	}
	if err := c.InstanceLimits.Validate(); err != nil {
		return err
	}
	return c.DistributorRing.Validate()
}

// Distributor is the write path's entry point. Its service starts and stops
// the pool of ingester connections.
type Distributor struct {
	services.Service

	cfg         Config
	limits      *validation.Overrides
	ring        ring.ReadRing
	pool        *client.Pool
	logger      *slog.Logger
	metrics     *metrics
	subservices *services.Manager
	watcher     *services.FailureWatcher
	now         func() time.Time

	tenants  tenants
	instance *instanceLimiter
	ha       *haDedup // nil without -distributor.ha-tracker.enable
	// distributors counts the healthy distributors with the global
	// ingestion rate strategy; nil with the local one.
	distributors interface{ HealthyInstancesCount() int }
	// workers run the ingester calls; nil without -distributor.num-push-workers.
	workers *pushWorkers

	requests    sync.Pool // *pushRequest: decoded remote-write requests
	batches     sync.Pool // *batch: per-push scratch
	ingesterReq sync.Pool // *ingesterRequest

	otlpSettings   prometheusremotewrite.Settings
	otlpRequests   sync.Pool // *otlpRequest
	otlpConverters sync.Pool // *prometheusremotewrite.PrometheusConverter
}

// Option configures a Distributor.
type Option func(*Distributor, *[]services.Service)

// WithRing applies the global ingestion rate strategy: the distributor
// joins the distributor ring r (run as its subservice) and divides each
// tenant's rate limits by the healthy distributors in it.
func WithRing(r *Ring) Option {
	return func(d *Distributor, subservices *[]services.Service) {
		d.distributors = r
		*subservices = append(*subservices, r)
	}
}

// New returns a distributor writing to the ingesters of the ring through
// connections configured by clientCfg (-ingester.client.*); tls is nil for
// plaintext. The caller runs the ring's own service.
func New(cfg Config, clientCfg client.Config, tls *tlsconfig.Client, limits *validation.Overrides, ingesters ring.ReadRing, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Distributor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if limits == nil || ingesters == nil {
		return nil, errors.New("distributor: limits and ring are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Distributor{
		cfg:     cfg,
		limits:  limits,
		ring:    ingesters,
		pool:    client.NewPool(ingesters, poolConfig(cfg, clientCfg), tls, logger, reg, "distributor"),
		logger:  logger,
		metrics: newMetrics(reg),
		now:     time.Now,
		tenants: tenants{m: map[string]*tenantState{}},

		otlpSettings: cfg.otlpSettings(),
	}
	d.instance = newInstanceLimiter(cfg.InstanceLimits, func() time.Time { return d.now() }, reg)
	if cfg.NumPushWorkers > 0 {
		d.workers = newPushWorkers(cfg.NumPushWorkers, reg)
	}
	subservices := []services.Service{d.pool}
	for _, o := range opts {
		o(d, &subservices)
	}
	var err error
	if d.subservices, err = services.NewManager(subservices...); err != nil {
		return nil, fmt.Errorf("distributor: %w", err)
	}
	d.watcher = services.NewFailureWatcher()
	d.watcher.WatchManager(d.subservices)
	d.Service = services.NewBasicService(d.starting, d.running, d.stopping)
	return d, nil
}

func (d *Distributor) starting(ctx context.Context) error {
	return services.StartManagerAndAwaitHealthy(ctx, d.subservices)
}

func (d *Distributor) running(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-d.watcher.Chan():
			return fmt.Errorf("distributor subservice failed: %w", err)
		case <-t.C:
			d.evictIdle(d.now())
		}
	}
}

func (d *Distributor) stopping(error) error {
	if d.workers != nil {
		d.workers.stop()
	}
	return services.StopManagerAndAwaitStopped(context.Background(), d.subservices)
}

// poolConfig is the ingester client configuration of the distributor's
// pool: its connections are checked every -distributor.client-cleanup-period.
func poolConfig(cfg Config, clientCfg client.Config) client.Config {
	clientCfg.HealthCheckInterval = cfg.ClientCleanupPeriod
	clientCfg.UseStreamPush = cfg.UseStreamPush
	if cfg.SignWriteRequests && len(cfg.SignWriteRequestsKeys) > 0 {
		clientCfg.StreamSigningKey = cfg.SignWriteRequestsKeys[0]
	}
	return clientCfg
}

// writeOp is the ring operation of a push: with -distributor.extend-writes
// a replica that is not ACTIVE is replaced by the next ingester.
func (d *Distributor) writeOp() ring.Operation {
	if d.cfg.ExtendWrites {
		return ring.Write
	}
	return ring.WriteNoExtend
}

// PushError is a push that failed, with the HTTP status it answers with.
type PushError struct {
	Code int
	Msg  string
	// RetryAfter, when set, is the Retry-After of a 429.
	RetryAfter time.Duration
}

func (e *PushError) Error() string { return e.Msg }

// writeStats are what a push wrote, for remote write 2.0's
// X-Prometheus-Remote-Write-*-Written headers.
type writeStats struct {
	samples, histograms, exemplars int
}

// Push validates req against its tenant's limits and writes its valid part
// to the ingesters. Invalid series, samples, exemplars and metadata are
// counted and left out, and the answer is then a *PushError with code 400
// naming the first of them. Push modifies req: labels get sorted and
// invalid data removed. The tenant comes from ctx.
func (d *Distributor) Push(ctx context.Context, req *prompb.WriteRequest) error {
	userID, err := tenant.ID(ctx)
	if err != nil {
		return &PushError{Code: http.StatusUnauthorized, Msg: "no tenant: " + err.Error()}
	}
	// Return only once no ingester call reads req any more: the caller
	// owns it again.
	done := make(chan struct{})
	_, err = d.push(ctx, userID, req, &source{release: func() { close(done) }})
	<-done
	return err
}

// source is what comes with a request decoded from the wire.
type source struct {
	// raw is the decoded body and spans the bytes of each series in it
	// (remote write 1.0 only): a series that validation left untouched is
	// forwarded as the sender encoded it, not re-encoded.
	raw   []byte
	spans [][2]int32
	// issues are the series a 2.0 request's decoding left out.
	issues *remotewrite.SeriesIssues
	// release frees the request's memory; push calls it once no ingester
	// call reads the request any more.
	release func()
}

// batch is the scratch of one push: the ring key of every series and
// metadata to write, each series encoded once for all its replicas, and
// the request's metadata to write.
type batch struct {
	keys     []uint32
	arena    []byte     // field-1 records of prompb.WriteRequest, one per series
	records  [][2]int32 // each series' record in arena
	reqIndex []int32    // each series' index in the request
	metadata []int32
}

// push is Push with the request's source.
func (d *Distributor) push(ctx context.Context, userID string, req *prompb.WriteRequest, src *source) (stats writeStats, err error) {
	releaseNow := true
	defer func() {
		if releaseNow && src.release != nil {
			src.release()
		}
	}()

	doneInstance, err := d.instance.admitPush()
	if err != nil {
		return writeStats{}, err
	}
	defer doneInstance()

	now := d.now()
	limits := d.limits.For(userID)
	if removed, err := d.checkHA(ctx, userID, limits, req); err != nil {
		return writeStats{}, err
	} else if removed {
		src.spans = nil // every series changed: encode them anew
	}
	ts := d.tenant(userID, limits, now)
	v := newValidator(limits, now)
	if is := src.issues; is != nil && is.First != "" {
		v.first = is.First
		v.disc.samples[reasonInvalidLabel] += is.Samples
		v.disc.exemplars[reasonInvalidLabel] += is.Exemplars
	}

	b, _ := d.batches.Get().(*batch)
	if b == nil {
		b = &batch{}
	}
	b.keys, b.arena, b.records, b.reqIndex, b.metadata = b.keys[:0], b.arena[:0], b.records[:0], b.reqIndex[:0], b.metadata[:0]
	putBatch := func() {
		if cap(b.arena) <= maxPooledBytes {
			d.batches.Put(b)
		}
	}
	defer func() {
		if releaseNow {
			putBatch()
		}
	}()

	// Validate, place every valid series on the ring and encode it.
	var samplesIn, exemplarsIn, latest int64
	latest = -1 << 63
	// firstAt is the index of the series the validator's first refusal is
	// about: -1 for the series decoding left out.
	firstAt := -1
	userHash := shardByUser(userID)
	for i := range req.Timeseries {
		s := &req.Timeseries[i]
		samplesIn += int64(len(s.Samples) + len(s.Histograms))
		exemplarsIn += int64(len(s.Exemplars))
		for _, smp := range s.Samples {
			latest = max(latest, smp.Timestamp)
		}
		for j := range s.Histograms {
			latest = max(latest, s.Histograms[j].Timestamp)
		}
		if src.issues != nil && len(s.Samples) == 0 && len(s.Histograms) == 0 {
			// Remote write 2.0: a series is sent for its samples, and
			// Prometheus's receiver refuses one without.
			v.emptySeries(s)
			if firstAt < 0 && src.issues.First == "" {
				firstAt = i
			}
			continue
		}
		ok, modified := v.series(s)
		if v.first != "" && firstAt < 0 && (src.issues == nil || src.issues.First == "") {
			firstAt = i
		}
		if !ok {
			continue
		}
		b.reqIndex = append(b.reqIndex, int32(i))
		stats.samples += len(s.Samples)
		stats.histograms += len(s.Histograms)
		stats.exemplars += len(s.Exemplars)
		b.keys = append(b.keys, d.seriesKey(userHash, s.Labels))
		start := len(b.arena)
		if src.spans != nil && !modified {
			b.arena = appendRecord(b.arena, src.raw[src.spans[i][0]:src.spans[i][1]])
		} else {
			b.arena = appendSeries(b.arena, s)
		}
		b.records = append(b.records, [2]int32{int32(start), int32(len(b.arena))})
	}
	for i := range req.Metadata {
		ok := v.metadata(&req.Metadata[i])
		if !ok && firstAt < 0 && (src.issues == nil || src.issues.First == "") {
			firstAt = len(req.Timeseries) // metadata come after every series
		}
		if ok {
			b.keys = append(b.keys, hashAdd32a(userHash, req.Metadata[i].MetricFamilyName))
			b.metadata = append(b.metadata, int32(i))
		}
	}
	ts.samplesIn.Add(float64(samplesIn))
	ts.exemplarsIn.Add(float64(exemplarsIn))
	ts.metadataIn.Add(float64(len(req.Metadata)))
	if samplesIn > 0 {
		ts.latestSeen.Set(float64(latest) / 1000)
	}

	var partial error
	if v.first != "" {
		partial = &PushError{Code: http.StatusBadRequest, Msg: v.first}
	}
	if len(b.keys) == 0 {
		d.metrics.count(userID, &v.disc, v.reducedResolution)
		return writeStats{}, partial
	}

	// The rate limit counts what would be written, as Cortex does.
	n := stats.samples + stats.histograms + stats.exemplars + len(b.metadata)
	if ok, retry := ts.allow(now, n); !ok {
		v.disc.samples[reasonRateLimited] += stats.samples + stats.histograms
		v.disc.exemplars[reasonRateLimited] += stats.exemplars
		v.disc.metadata[reasonRateLimited] += len(b.metadata)
		d.metrics.count(userID, &v.disc, v.reducedResolution)
		return writeStats{}, &PushError{
			Code:       http.StatusTooManyRequests,
			Msg:        fmt.Sprintf("ingestion rate limit (%v) exceeded while adding %d samples and %d metadata", float64(ts.limiter.Load().Limit()), stats.samples+stats.histograms, len(b.metadata)),
			RetryAfter: retry,
		}
	}
	// Native histograms have a limit of their own: over it they are left
	// out, the rest of the push is written, and the answer is a 429.
	var histogramsLimited error
	if stats.histograms > 0 {
		if ok, retry := ts.allowHistograms(now, stats.histograms); !ok {
			dropped, exemplars := b.dropHistograms(req)
			v.disc.samples[reasonHistogramRateLimited] += dropped
			v.disc.exemplars[reasonHistogramRateLimited] += exemplars
			stats.histograms -= dropped
			stats.exemplars -= exemplars
			histogramsLimited = &PushError{
				Code:       http.StatusTooManyRequests,
				Msg:        fmt.Sprintf("native histogram ingestion rate limit (%v) exceeded while adding %d native histogram samples", float64(ts.histogramLimiter.Load().Limit()), dropped),
				RetryAfter: retry,
			}
			if len(b.keys) == 0 {
				d.metrics.count(userID, &v.disc, v.reducedResolution)
				return writeStats{}, histogramsLimited
			}
		}
	}
	d.metrics.count(userID, &v.disc, v.reducedResolution)
	d.instance.rate.add(int64(n))
	ts.samples.Add(float64(stats.samples + stats.histograms))
	ts.exemplars.Add(float64(stats.exemplars))
	ts.metadata.Add(float64(len(b.metadata)))

	ingesters := d.tenantRing(userID, limits.IngestionTenantShardSize)
	if ingesters.InstancesCount() == 0 {
		return writeStats{}, &PushError{Code: http.StatusServiceUnavailable, Msg: "no writable ingesters in the ring (none, or every one read-only): the write cannot be stored"}
	}

	// From here the ingester calls own the request's memory: DoBatch's
	// cleanup runs once the last of them returned, which may be after the
	// quorum answered.
	releaseNow = false
	fails := &failures{}
	batchCtx, cancel := context.WithTimeout(ctx, d.cfg.RemoteTimeout)
	defer cancel()
	// Ingester calls outlive the request: the replicas beyond the quorum
	// still get the data after the client has its answer.
	callCtx := context.WithoutCancel(ctx)
	opts := ring.DoBatchOptions{
		Cleanup: func() {
			putBatch()
			if src.release != nil {
				src.release()
			}
		},
		IsClientError: isClientError,
	}
	if d.workers != nil {
		opts.Go = d.workers.Go
	}
	err = ring.DoBatchWithOptions(batchCtx, d.writeOp(), ingesters, b.keys, func(inst ring.InstanceDesc, idx []int) error {
		err := d.send(callCtx, inst, req, b, idx, fails)
		if err != nil {
			fails.add(inst, err)
		}
		return err
	}, opts)
	if err != nil {
		return writeStats{}, d.batchError(batchCtx, err, fails)
	}
	// The written counts are what a quorum stored: the ingesters' own
	// refusals (out of order, duplicates, series limits) come off.
	lost, first, at := fails.quorumLoss(d.ring.ReplicationFactor()/2 + 1)
	stats.samples -= lost.samples
	stats.histograms -= lost.histograms
	stats.exemplars -= lost.exemplars
	if first != "" && (partial == nil || (firstAt >= 0 && at < firstAt)) {
		partial = &PushError{Code: http.StatusBadRequest, Msg: first}
	}
	if histogramsLimited != nil {
		return stats, histogramsLimited
	}
	return stats, partial
}

// dropHistograms removes the native histograms from the batch's series,
// and a series left without samples with its exemplars, re-encoding the
// series that had histograms. It returns what it removed.
func (b *batch) dropHistograms(req *prompb.WriteRequest) (histograms, exemplars int) {
	nSeries := len(b.records)
	arena := make([]byte, 0, len(b.arena))
	keys, records, reqIndex := b.keys[:0], b.records[:0], b.reqIndex[:0]
	for i := range nSeries {
		s := &req.Timeseries[b.reqIndex[i]]
		key, at, rec := b.keys[i], b.reqIndex[i], b.records[i]
		start := len(arena)
		if len(s.Histograms) == 0 {
			arena = append(arena, b.arena[rec[0]:rec[1]]...)
		} else {
			histograms += len(s.Histograms)
			s.Histograms = s.Histograms[:0]
			if len(s.Samples) == 0 {
				exemplars += len(s.Exemplars)
				continue
			}
			arena = appendSeries(arena, s)
		}
		keys = append(keys, key)
		records = append(records, [2]int32{int32(start), int32(len(arena))})
		reqIndex = append(reqIndex, at)
	}
	// The metadata keys follow the series'; copy handles the overlap.
	b.keys = append(keys, b.keys[nSeries:]...)
	b.arena, b.records, b.reqIndex = arena, records, reqIndex
	return histograms, exemplars
}

// appendRecord appends an encoded series as a prompb.WriteRequest field.
func appendRecord(dst, series []byte) []byte {
	dst = append(dst, 0x0a) // field 1 (timeseries), length-delimited
	dst = binary.AppendUvarint(dst, uint64(len(series)))
	return append(dst, series...)
}

// appendSeries encodes a series as a prompb.WriteRequest field.
func appendSeries(dst []byte, ts *prompb.TimeSeries) []byte {
	n := ts.Size()
	dst = append(dst, 0x0a)
	dst = binary.AppendUvarint(dst, uint64(n))
	dst = slices.Grow(dst, n)
	if _, err := ts.MarshalToSizedBuffer(dst[len(dst) : len(dst)+n]); err != nil {
		panic(err) // gogo's code fails only on a buffer of the wrong size
	}
	return dst[:len(dst)+n]
}
