// Package scheduler is Cortex's query-scheduler (-target=query-scheduler):
// query-frontends enqueue their queries to it over gRPC
// (SchedulerForFrontend.FrontendLoop), querier workers pull them from it
// (SchedulerForQuerier.QuerierLoop) and answer the frontend that asked
// directly, so that frontends and queriers scale independently. It keeps
// the fair per-tenant queue (pkg/scheduler/queue) with the tenants'
// shuffle shards of queriers (-frontend.max-queriers-per-tenant).
//
// It holds no series and runs no query: it must not import pkg/querier or
// pkg/frontend (only their wire types, schedulerpb).
package scheduler

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	fairqueue "github.com/cortex-tls/cortex/pkg/scheduler/queue"
	"github.com/cortex-tls/cortex/pkg/scheduler/schedulerpb"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/grpcclient"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// TLSPrefix is the flag prefix of the scheduler's link to the frontends,
// over which it reports the queries a querier dropped, as Cortex names it.
const TLSPrefix = "query-scheduler.grpc-client-config"

// maxIDLength bounds the querier IDs and frontend addresses a stream may
// name, which the scheduler keeps while the stream lasts.
const maxIDLength = 256

// DefaultMaxOutstanding is -frontend.max-outstanding-requests-per-tenant's
// default, for a scheduler given no tenant limits.
const DefaultMaxOutstanding = 100

// credentialHeaders never reach a querier, even from a frontend that
// forwards them: any holder of a valid certificate can pull queries.
var credentialHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie"}

// Config holds the query-scheduler's flags, with Cortex's names.
type Config struct {
	QuerierForgetDelay time.Duration     `yaml:"querier_forget_delay"`
	GRPCClientConfig   grpcclient.Config `yaml:"grpc_client_config"`
}

// RegisterFlags registers the scheduler's flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.QuerierForgetDelay, "query-scheduler.querier-forget-delay", 0, "If a querier disconnects, the query-scheduler keeps it in the tenants' shards (-frontend.max-queriers-per-tenant) until the forget delay has passed, so that a querier restarting does not move the tenants' shards: their queries wait for it meanwhile. 0 forgets it at once.")
	c.GRPCClientConfig.RegisterFlagsWithPrefix(TLSPrefix, grpcclient.Defaults{}, f)
}

// Validate checks the flags.
func (c *Config) Validate() error {
	if err := c.GRPCClientConfig.Validate(TLSPrefix); err != nil {
		return err
	}
	if c.QuerierForgetDelay < 0 {
		return fmt.Errorf("-query-scheduler.querier-forget-delay must not be negative, got %s", c.QuerierForgetDelay)
	}
	return nil
}

// Scheduler queues the frontends' queries and hands them to queriers.
type Scheduler struct {
	services.Service
	cfg    Config
	logger *slog.Logger
	queue  *fairqueue.Queue[*request]
	// frontendTLS is the -query-scheduler.grpc-client-config link.
	frontendTLS *tlsconfig.Client
	// maxQueriers is a tenant's -frontend.max-queriers-per-tenant.
	maxQueriers func(tenant string) float64
	// maxOutstanding is a tenant's -frontend.max-outstanding-requests-per-tenant.
	maxOutstanding func(tenant string) int
	// queryPriority is a tenant's limits.query_priority.
	queryPriority func(tenant string) validation.QueryPriority
	// checkTenant refuses a tenant the calling frontend may not act for.
	checkTenant func(ctx context.Context, tenant string) error

	// stopping is closed when the scheduler stops: frontend streams end.
	stopping chan struct{}

	mu        sync.Mutex
	frontends map[string]*connectedFrontend
	pending   map[requestKey]*request

	queueLength   *prometheus.GaugeVec
	discarded     *prometheus.CounterVec
	queueDuration prometheus.Histogram
	querierConns  prometheus.GaugeFunc
	frontendConns prometheus.GaugeFunc
}

type requestKey struct {
	frontend string
	queryID  uint64
}

type connectedFrontend struct {
	streams int
	// ctx runs every query of the frontend; it ends with its last stream.
	ctx    context.Context
	cancel context.CancelFunc
}

type request struct {
	frontend string
	queryID  uint64
	tenant   string
	req      *schedulerpb.HTTPRequest
	ctx      context.Context
	cancel   context.CancelFunc
}

// Option sets what a scheduler takes from the rest of the process.
type Option func(*Scheduler)

// WithMaxQueriers gives the tenants' -frontend.max-queriers-per-tenant.
func WithMaxQueriers(f func(tenant string) float64) Option {
	return func(s *Scheduler) { s.maxQueriers = f }
}

// WithMaxOutstanding gives the tenants' -frontend.max-outstanding-requests-per-tenant.
func WithMaxOutstanding(f func(tenant string) int) Option {
	return func(s *Scheduler) { s.maxOutstanding = f }
}

// WithQueryPriority gives the tenants' limits.query_priority: their
// queries are dequeued by the priority their frontend assigned, and their
// reserved queriers kept for their priorities.
func WithQueryPriority(f func(tenant string) validation.QueryPriority) Option {
	return func(s *Scheduler) { s.queryPriority = f }
}

// WithTenantCheck refuses the queries of tenants the frontend's client
// identity may not act for (-auth.client-tenants-file).
func WithTenantCheck(f func(ctx context.Context, tenant string) error) Option {
	return func(s *Scheduler) { s.checkTenant = f }
}

// New returns a scheduler; frontendTLS is nil for a plaintext link to the
// frontends.
func New(cfg Config, frontendTLS *tlsconfig.Client, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{
		cfg: cfg, logger: logger.With("component", "query-scheduler"), frontendTLS: frontendTLS,
		maxQueriers:    func(string) float64 { return 0 },
		maxOutstanding: fairqueue.Bound(DefaultMaxOutstanding),
		checkTenant:    func(context.Context, string) error { return nil },
		frontends:      map[string]*connectedFrontend{}, pending: map[requestKey]*request{},
		stopping: make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	s.queueLength = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cortex_query_scheduler_queue_length", Help: "Number of queries in the queue."}, []string{"user", "priority", "type"})
	s.discarded = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cortex_query_scheduler_discarded_requests_total", Help: "Total number of query requests discarded."}, []string{"user", "priority"})
	s.queueDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cortex_query_scheduler_queue_duration_seconds", Help: "Time spend by requests in queue before getting picked up by a querier.", Buckets: prometheus.DefBuckets})
	s.queue = fairqueue.New[*request](fairqueue.Config{MaxOutstanding: s.maxOutstanding, ForgetDelay: cfg.QuerierForgetDelay,
		QueryPriority: s.queryPriority, Requests: fairqueue.NewRequestsCounter(reg)}, s.queueLength, s.discarded)
	s.querierConns = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cortex_query_scheduler_connected_querier_clients", Help: "Number of querier worker clients currently connected to the query-scheduler."},
		func() float64 { return float64(s.queue.ConnectedQuerierWorkers()) })
	s.frontendConns = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cortex_query_scheduler_connected_frontend_clients", Help: "Number of query-frontend worker clients currently connected to the query-scheduler."},
		s.connectedFrontendStreams)
	if reg != nil {
		reg.MustRegister(s.queueLength, s.discarded, s.queueDuration, s.querierConns, s.frontendConns)
	}
	s.Service = services.NewIdleService(nil, func(error) error {
		close(s.stopping)
		// Queued queries fail; their frontends retry them on another
		// scheduler once their streams here end.
		for _, r := range s.queue.Stop() {
			r.cancel()
		}
		return nil
	})
	return s, nil
}

func (s *Scheduler) connectedFrontendStreams() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, f := range s.frontends {
		n += f.streams
	}
	return float64(n)
}

func (s *Scheduler) running() bool { return s.State() == services.Running }

// NotifyQuerierShutdown takes a querier's notice that it shuts down: it
// leaves the tenants' shards once its streams end, without waiting for
// -query-scheduler.querier-forget-delay.
func (s *Scheduler) NotifyQuerierShutdown(_ context.Context, in *wrapperspb.StringValue) (*emptypb.Empty, error) {
	if id := in.GetValue(); id != "" && len(id) <= maxIDLength {
		s.logger.Info("querier shutting down", "querier", id)
		s.queue.NotifyQuerierShutdown(id)
	}
	return &emptypb.Empty{}, nil
}

// FrontendLoop serves one frontend stream.
func (s *Scheduler) FrontendLoop(stream schedulerpb.FrontendLoopServer) error {
	init, err := stream.Recv()
	if err != nil {
		return err
	}
	addr := init.GetFrontendAddress()
	if init.GetType() != schedulerpb.FrontendToSchedulerType_INIT || addr == "" {
		return status.Error(codes.InvalidArgument, "the first message of a frontend stream must be INIT with the frontend's address")
	}
	if len(addr) > maxIDLength {
		return status.Errorf(codes.InvalidArgument, "frontend address longer than %d bytes", maxIDLength)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return status.Errorf(codes.InvalidArgument, "frontend address %q is not host:port: %v", addr, err)
	}
	fctx := s.frontendConnected(addr)
	defer s.frontendDisconnected(addr)

	if !s.running() {
		return stream.Send(&schedulerpb.SchedulerToFrontend{Status: schedulerpb.SchedulerToFrontendStatus_SHUTTING_DOWN})
	}
	if err := stream.Send(&schedulerpb.SchedulerToFrontend{Status: schedulerpb.SchedulerToFrontendStatus_OK}); err != nil {
		return err
	}
	// One reader, so that a stopping scheduler ends the stream at once
	// rather than at the frontend's next message.
	msgs := make(chan *schedulerpb.FrontendToScheduler)
	errc := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-stream.Context().Done():
				return
			}
		}
	}()
	for {
		var msg *schedulerpb.FrontendToScheduler
		select {
		case err := <-errc:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-s.stopping:
			// The frontend retries its queries on another scheduler.
			return stream.Send(&schedulerpb.SchedulerToFrontend{Status: schedulerpb.SchedulerToFrontendStatus_SHUTTING_DOWN})
		case msg = <-msgs:
		}
		var resp *schedulerpb.SchedulerToFrontend
		switch msg.GetType() {
		case schedulerpb.FrontendToSchedulerType_ENQUEUE:
			err := s.enqueue(stream.Context(), fctx, addr, msg)
			switch {
			case err == nil:
				resp = &schedulerpb.SchedulerToFrontend{Status: schedulerpb.SchedulerToFrontendStatus_OK}
			case errors.Is(err, fairqueue.ErrTooManyRequests):
				resp = &schedulerpb.SchedulerToFrontend{Status: schedulerpb.SchedulerToFrontendStatus_TOO_MANY_REQUESTS_PER_TENANT}
			case errors.Is(err, fairqueue.ErrStopped):
				resp = &schedulerpb.SchedulerToFrontend{Status: schedulerpb.SchedulerToFrontendStatus_SHUTTING_DOWN}
			default:
				resp = &schedulerpb.SchedulerToFrontend{Status: schedulerpb.SchedulerToFrontendStatus_ERROR, Error: err.Error()}
			}
		case schedulerpb.FrontendToSchedulerType_CANCEL:
			s.cancel(addr, msg.GetQueryID())
			resp = &schedulerpb.SchedulerToFrontend{Status: schedulerpb.SchedulerToFrontendStatus_OK}
		default:
			return status.Errorf(codes.InvalidArgument, "unknown message type %v from frontend %s", msg.GetType(), addr)
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func (s *Scheduler) frontendConnected(addr string) context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.frontends[addr]
	if f == nil {
		f = &connectedFrontend{}
		f.ctx, f.cancel = context.WithCancel(context.Background())
		s.frontends[addr] = f
	}
	f.streams++
	return f.ctx
}

// frontendDisconnected cancels the frontend's queries with its last stream:
// it retries them elsewhere.
func (s *Scheduler) frontendDisconnected(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.frontends[addr]
	f.streams--
	if f.streams == 0 {
		delete(s.frontends, addr)
		f.cancel()
	}
}

func (s *Scheduler) enqueue(streamCtx, frontendCtx context.Context, addr string, msg *schedulerpb.FrontendToScheduler) error {
	userID := msg.GetUserID()
	// A query of several tenants (tenant federation) is queued under all of them.
	if err := tenant.ValidOrgID(userID); err != nil {
		return fmt.Errorf("query %d: %w", msg.GetQueryID(), err)
	}
	if err := s.checkTenant(streamCtx, userID); err != nil {
		return err
	}
	if msg.GetHttpRequest() == nil {
		return fmt.Errorf("query %d of tenant %q has no HTTP request", msg.GetQueryID(), userID)
	}
	req := msg.GetHttpRequest()
	kept := req.Headers[:0]
	for _, h := range req.Headers {
		if !isCredential(h.GetKey()) {
			kept = append(kept, h)
		}
	}
	req.Headers = kept
	ctx, cancel := context.WithCancel(frontendCtx)
	r := &request{frontend: addr, queryID: msg.GetQueryID(), tenant: userID, req: req, ctx: ctx, cancel: cancel}
	key := requestKey{addr, r.queryID}
	s.mu.Lock()
	if old := s.pending[key]; old != nil {
		old.cancel()
	}
	s.pending[key] = r
	s.mu.Unlock()
	if err := s.queue.EnqueuePriority(userID, r, msg.GetPriority(), s.maxQueriers(userID)); err != nil {
		s.cancel(addr, r.queryID)
		return err
	}
	return nil
}

func isCredential(key string) bool {
	k := http.CanonicalHeaderKey(key)
	for _, c := range credentialHeaders {
		if k == c {
			return true
		}
	}
	return false
}

// cancel ends a query, queued or running: a running one's querier stream
// ends, which cancels it on the querier.
func (s *Scheduler) cancel(addr string, queryID uint64) {
	key := requestKey{addr, queryID}
	s.mu.Lock()
	r := s.pending[key]
	delete(s.pending, key)
	s.mu.Unlock()
	if r != nil {
		r.cancel()
	}
}

// QuerierLoop serves one querier worker stream.
func (s *Scheduler) QuerierLoop(stream schedulerpb.QuerierLoopServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	querierID := first.GetQuerierID()
	if querierID == "" || len(querierID) > maxIDLength {
		querierID = "unknown"
		if p, ok := peer.FromContext(stream.Context()); ok {
			querierID = p.Addr.String()
		}
	}
	s.queue.RegisterQuerier(querierID)
	defer s.queue.UnregisterQuerier(querierID)
	cursor := fairqueue.FirstTenant
	for st := s.State(); st == services.Running || st == services.Stopping; st = s.State() {
		r, next, waited, err := s.queue.Dequeue(stream.Context(), cursor, querierID)
		if err != nil {
			if errors.Is(err, fairqueue.ErrStopped) {
				return status.Error(codes.Unavailable, "query-scheduler is stopping")
			}
			return err
		}
		cursor = next
		s.queueDuration.Observe(waited.Seconds())
		if r.ctx.Err() != nil {
			s.cancel(r.frontend, r.queryID)
			continue
		}
		if err := s.forward(stream, r, querierID); err != nil {
			return err
		}
	}
	return status.Error(codes.Unavailable, "query-scheduler is not running")
}

// forward sends r to the querier and waits until it says it is done.
func (s *Scheduler) forward(stream schedulerpb.QuerierLoopServer, r *request, querierID string) error {
	defer s.cancel(r.frontend, r.queryID)
	errc := make(chan error, 1)
	go func() {
		err := stream.Send(&schedulerpb.SchedulerToQuerier{QueryID: r.queryID, HttpRequest: r.req, FrontendAddress: r.frontend, UserID: r.tenant})
		if err == nil {
			_, err = stream.Recv()
		}
		errc <- err
	}()
	select {
	case <-r.ctx.Done():
		// Canceled by its frontend: ending the stream cancels the query
		// on the querier, whose worker opens a new stream.
		return status.Error(codes.Canceled, "query canceled by its frontend")
	case err := <-errc:
		if err != nil {
			// The querier went away with the query: tell the frontend,
			// which retries it.
			go s.reportError(r, fmt.Errorf("querier %s running the query disconnected from the query-scheduler: %w", querierID, err))
		}
		return err
	}
}

// reportError answers a query with a 500 on behalf of its querier, over
// -query-scheduler.grpc-client-config.
func (s *Scheduler) reportError(r *request, queryErr error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := grpc.NewClient("passthrough:///"+r.frontend, append(s.cfg.GRPCClientConfig.DialOptions(s.frontendTLS),
		append(tenant.ClientInterceptors(), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{})))...)...)
	if err != nil {
		s.logger.Warn("cannot report a failed query to its frontend", "frontend", r.frontend, "err", err, "query_err", queryErr)
		return
	}
	defer cc.Close()
	_, err = schedulerpb.QueryResult(tenant.Inject(ctx, r.tenant), cc, &schedulerpb.QueryResultRequest{
		QueryID:      r.queryID,
		HttpResponse: &schedulerpb.HTTPResponse{Code: http.StatusInternalServerError, Body: []byte(queryErr.Error())},
	})
	if err != nil {
		s.logger.Warn("cannot report a failed query to its frontend (-"+TLSPrefix+".tls-*)", "frontend", r.frontend, "err", err, "query_err", queryErr)
	}
}

// QueueLen returns the number of queued queries of tenant.
func (s *Scheduler) QueueLen(tenant string) int { return s.queue.Len(tenant) }

// ConnectedQuerierWorkers returns the number of querier streams connected.
func (s *Scheduler) ConnectedQuerierWorkers() int { return s.queue.ConnectedQuerierWorkers() }
