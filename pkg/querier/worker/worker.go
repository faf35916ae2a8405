// Package worker is the querier's side of the query-frontend link: it pulls
// queries from every frontend over gRPC streams (-querier.frontend-client.
// TLS), runs them against the querier's own HTTP API in-process, and sends
// the answers back.
//
// It runs queries only through the handler it is given: it must not import
// pkg/querier or pkg/frontend, and it keeps no query past its answer.
package worker

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/grafana/dskit/backoff"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
	"github.com/cortex-tls/cortex/pkg/querier/stats"
	"github.com/cortex-tls/cortex/pkg/scheduler/dnsaddr"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/tracing"
	"github.com/cortex-tls/cortex/pkg/util/grpcclient"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
)

// TLSPrefix is the flag prefix of the worker's link to the frontend, as the
// guide names it.
const TLSPrefix = "querier.frontend-client"

// Config holds the worker flags, with Cortex's names.
type Config struct {
	FrontendAddress  string           `yaml:"frontend_address"`
	SchedulerAddress string           `yaml:"scheduler_address"`
	QuerierID        string           `yaml:"id"`
	Parallelism      int              `yaml:"parallelism"`
	DNSLookupPeriod  time.Duration    `yaml:"dns_lookup_duration"`
	GRPCClientConfig GRPCClientConfig `yaml:"grpc_client_config"`

	// MatchMaxConcurrent sets Parallelism to -querier.max-concurrent.
	MatchMaxConcurrent bool `yaml:"match_max_concurrent"`
}

// GRPCClientConfig is the -querier.frontend-client.* block, Cortex's
// grpc_client_config.
type GRPCClientConfig = grpcclient.Config

// RegisterFlags registers the worker's flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.FrontendAddress, "querier.frontend-address", "", "host:port of the query-frontend(s) to pull queries from. A DNS name resolving to several addresses connects to each. Empty: no worker (with -target=all, this process's own gRPC server).")
	f.StringVar(&c.SchedulerAddress, "querier.scheduler-address", "", "host:port of the query-scheduler(s) to pull queries from, instead of -querier.frontend-address; answers go straight to the query-frontend that asked, over the same -querier.frontend-client.tls-* link. A DNS name resolving to several addresses connects to each (so does a comma-separated list).")
	f.StringVar(&c.QuerierID, "querier.id", "", "The querier's ID, which the query-frontends and query-schedulers count its streams under for -frontend.max-queriers-per-tenant. Empty: the hostname.")
	f.IntVar(&c.Parallelism, "querier.worker-parallelism", 10, "Number of queries pulled and run at once from each query-frontend.")
	f.BoolVar(&c.MatchMaxConcurrent, "querier.worker-match-max-concurrent", false, "Pull -querier.max-concurrent queries at once from each query-frontend or query-scheduler, instead of -querier.worker-parallelism. (Cortex divides -querier.max-concurrent between the query-frontends; here each gets it whole, and -querier.max-concurrent still bounds the queries evaluated at once.)")
	f.DurationVar(&c.DNSLookupPeriod, "querier.dns-lookup-period", 10*time.Second, "How often -querier.frontend-address is resolved again.")
	// A query's answer is sent whole: the send limit is the receive one.
	c.GRPCClientConfig.RegisterFlagsWithPrefix(TLSPrefix, grpcclient.Defaults{MaxSendMsgSize: 100 << 20}, f)
}

// Validate checks the flags.
func (c *Config) Validate() error {
	if err := c.GRPCClientConfig.Validate(TLSPrefix); err != nil {
		return err
	}
	if c.FrontendAddress != "" && c.SchedulerAddress != "" {
		return fmt.Errorf("-querier.frontend-address=%q and -querier.scheduler-address=%q are both set: a querier pulls from the query-frontends or from the query-schedulers, not both", c.FrontendAddress, c.SchedulerAddress)
	}
	if c.FrontendAddress == "" && c.SchedulerAddress == "" {
		return nil
	}
	if _, err := dnsaddr.Split(c.addressFlag(), c.address()); err != nil {
		return err
	}
	if c.Parallelism <= 0 {
		return fmt.Errorf("-querier.worker-parallelism must be at least 1, got %d", c.Parallelism)
	}
	if c.DNSLookupPeriod <= 0 {
		return fmt.Errorf("-querier.dns-lookup-period must be positive, got %s", c.DNSLookupPeriod)
	}
	return nil
}

// Worker pulls queries from the query-frontends.
type Worker struct {
	services.Service
	cfg     Config
	tls     *tlsconfig.Client
	handler http.Handler
	logger  *slog.Logger
	id      string
	lookup  dnsaddr.Lookup

	mu        sync.Mutex
	frontends map[string]context.CancelFunc // address -> its connection's cancel
	wg        sync.WaitGroup
	lastLog   map[string]time.Time
	// frontendPool holds the connections answers go to, with -querier.scheduler-address.
	frontendPool frontendConns

	connected prometheus.GaugeFunc
}

// New returns a worker that runs the queries it pulls on handler, the
// querier's API (the tenant is set from each query's X-Scope-OrgID).
// tls is nil for a plaintext link.
func New(cfg Config, tls *tlsconfig.Client, handler http.Handler, logger *slog.Logger, reg prometheus.Registerer) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Each query is a request of its own to trace, continuing the trace
	// of the frontend's request, whose context its headers carry.
	handler = tracing.CarriedRequests(handler)
	id := cfg.QuerierID
	if id == "" {
		id, _ = os.Hostname()
	}
	w := &Worker{cfg: cfg, tls: tls, handler: handler, logger: logger.With("component", "querier-worker"), id: id,
		lookup: net.DefaultResolver.LookupHost, frontends: map[string]context.CancelFunc{}, lastLog: map[string]time.Time{}}
	w.connected = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cortex_querier_worker_frontends", Help: "Number of query-frontend addresses this querier pulls queries from."},
		func() float64 {
			w.mu.Lock()
			defer w.mu.Unlock()
			return float64(len(w.frontends))
		})
	if reg != nil {
		reg.MustRegister(w.connected)
	}
	w.Service = services.NewBasicService(nil, w.running, w.stopping)
	return w, nil
}

func (w *Worker) running(ctx context.Context) error {
	tick := time.NewTicker(w.cfg.DNSLookupPeriod)
	defer tick.Stop()
	for {
		addrs, err := dnsaddr.Resolve(ctx, w.lookup, w.cfg.addressFlag(), w.cfg.address())
		if err != nil {
			w.logger.Warn("keeping the current addresses to pull queries from", "err", err)
		} else {
			w.setFrontends(ctx, addrs)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (w *Worker) stopping(error) error {
	w.mu.Lock()
	for addr, cancel := range w.frontends {
		cancel()
		delete(w.frontends, addr)
	}
	w.mu.Unlock()
	w.wg.Wait()
	w.closeFrontendConns()
	return nil
}

// setFrontends connects to new addresses and drops vanished ones.
func (w *Worker) setFrontends(ctx context.Context, addrs map[string]string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for addr, cancel := range w.frontends {
		if _, ok := addrs[addr]; !ok {
			w.logger.Info("query-frontend no longer resolved, disconnecting", "frontend", addr)
			cancel()
			delete(w.frontends, addr)
		}
	}
	for addr, authority := range addrs {
		if _, ok := w.frontends[addr]; ok {
			continue
		}
		fctx, cancel := context.WithCancel(ctx)
		w.frontends[addr] = cancel
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.runFrontend(fctx, addr, authority)
		}()
	}
}

// runFrontend keeps -querier.worker-parallelism streams open to one frontend.
func (w *Worker) runFrontend(ctx context.Context, addr, authority string) {
	opts := append(w.cfg.GRPCClientConfig.DialOptions(w.tls),
		// Verify the frontend's certificate against the name configured,
		// not the address it resolved to.
		grpc.WithAuthority(authority),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{})),
	)
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		w.logger.Error("cannot create a client for the query-frontend", "frontend", addr, "err", err)
		return
	}
	defer cc.Close()
	if w.cfg.SchedulerAddress != "" {
		w.runScheduler(ctx, cc, addr)
		return
	}
	client := frontendpb.NewFrontendClient(cc)
	w.logger.Info("pulling queries from query-frontend", "frontend", addr, "parallelism", w.cfg.Parallelism)
	var wg sync.WaitGroup
	for range w.cfg.Parallelism {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx, client, addr)
		}()
	}
	wg.Wait()
	w.notifyShutdown(addr, func(ctx context.Context) error {
		_, err := client.NotifyClientShutdown(ctx, wrapperspb.String(w.id))
		return err
	})
}

// notifyShutdown tells the frontend or scheduler at addr, once this
// worker's streams to it ended, that the querier goes: it then leaves the
// tenants' shards at once rather than after their querier forget delay.
func (w *Worker) notifyShutdown(addr string, notify func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := notify(ctx); err != nil {
		w.logger.Debug("could not tell the query-frontend or query-scheduler that this querier shuts down", "address", addr, "err", err)
	}
}

func (w *Worker) loop(ctx context.Context, client frontendpb.FrontendClient, addr string) {
	bo := backoff.New(ctx, backoff.Config{MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second})
	for bo.Ongoing() {
		served, err := w.process(ctx, client)
		if ctx.Err() != nil {
			return
		}
		if served {
			bo.Reset()
		}
		if served && status.Code(err) == codes.Canceled {
			// The frontend ended the stream to cancel a query: reconnect at once.
			continue
		}
		w.logFailure(addr, err)
		bo.Wait()
	}
}

// logFailure logs a failing frontend once every 10 seconds at most.
func (w *Worker) logFailure(addr string, err error) {
	w.mu.Lock()
	last := w.lastLog[addr]
	now := time.Now()
	if now.Sub(last) < 10*time.Second {
		w.mu.Unlock()
		return
	}
	w.lastLog[addr] = now
	w.mu.Unlock()
	w.logger.Warn("error pulling queries from the query-frontend; retrying with backoff", "frontend", addr, "err", err)
}

// process runs one stream until it ends; served reports whether any query
// went through it.
func (w *Worker) process(ctx context.Context, client frontendpb.FrontendClient) (served bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Process(metadata.AppendToOutgoingContext(ctx, querierIDHeader, w.id))
	if err != nil {
		return false, err
	}
	// One reader: a failed or ended stream cancels the query being run,
	// which is how a client's cancellation reaches this querier.
	msgs := make(chan *frontendpb.FrontendToClient)
	errc := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				errc <- err
				cancel()
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case err := <-errc:
			return served, err
		case <-ctx.Done():
			return served, ctx.Err()
		case m := <-msgs:
			resp := w.handle(ctx, m.HttpRequest)
			if ctx.Err() != nil {
				select {
				case err := <-errc:
					return served, err
				default:
					return served, ctx.Err()
				}
			}
			if err := stream.Send(&frontendpb.ClientToFrontend{HttpResponse: resp, ClientId: w.id}); err != nil {
				return served, err
			}
			served = true
		}
	}
}

// handle runs one query against the querier's API, as the tenant it names.
func (w *Worker) handle(ctx context.Context, req *frontendpb.HTTPRequest) *frontendpb.HTTPResponse {
	if req == nil {
		return textResponse(http.StatusBadRequest, "empty request")
	}
	h := frontendpb.FromHeaders(req.Headers)
	org := h.Get(tenant.HeaderName)
	if org == "" {
		return textResponse(http.StatusUnauthorized, "no "+tenant.HeaderName+" in the query")
	}
	qs := &stats.QueryStats{}
	r, err := http.NewRequestWithContext(stats.NewContext(tenant.Inject(ctx, org), qs), req.Method, req.Url, bytes.NewReader(req.Body))
	if err != nil {
		return textResponse(http.StatusBadRequest, err.Error())
	}
	r.Header = h
	r.RequestURI = req.Url
	r.ContentLength = int64(len(req.Body))
	rec := &recorder{header: http.Header{}}
	start := time.Now()
	w.handler.ServeHTTP(rec, r)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	// For the frontend's query statistics (-frontend.query-stats-enabled).
	rec.header.Set(frontendpb.QuerierWallTimeHeader, strconv.FormatFloat(time.Since(start).Seconds(), 'f', -1, 64))
	if v := qs.Encode(); v != "" {
		rec.header.Set(stats.Header, v)
	}
	return &frontendpb.HTTPResponse{Code: int32(rec.code), Headers: frontendpb.ToHeaders(rec.header), Body: rec.body.Bytes()}
}

func textResponse(code int, msg string) *frontendpb.HTTPResponse {
	return &frontendpb.HTTPResponse{Code: int32(code), Body: []byte(msg),
		Headers: []*frontendpb.Header{{Key: "Content-Type", Values: []string{"text/plain; charset=utf-8"}}}}
}

// recorder collects a handler's answer.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(b)
}
