package frontend

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/backoff"
	"github.com/grafana/dskit/flagext"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
	"github.com/cortex-tls/cortex/pkg/scheduler/dnsaddr"
	"github.com/cortex-tls/cortex/pkg/scheduler/schedulerpb"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/grpcclient"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
)

// SchedulerTLSPrefix is the flag prefix of the frontend's link to the
// query-schedulers, as Cortex names it.
const SchedulerTLSPrefix = "frontend.grpc-client-config"

// maxCancelsPerStream bounds the cancellations waiting to be sent on one
// scheduler stream; beyond it a cancellation is dropped and the query runs
// to its end, its answer discarded.
const maxCancelsPerStream = 1000

// SchedulerConfig is the frontend's link to query-schedulers, with
// Cortex's flag names and YAML keys (the frontend block, inline).
type SchedulerConfig struct {
	SchedulerAddress       string            `yaml:"scheduler_address"`
	DNSLookupPeriod        time.Duration     `yaml:"scheduler_dns_lookup_period"`
	WorkerConcurrency      int               `yaml:"scheduler_worker_concurrency"`
	GRPCClientConfig       grpcclient.Config `yaml:"grpc_client_config"`
	InstanceInterfaceNames []string          `yaml:"instance_interface_names"`
	InstanceAddr           string            `yaml:"address"`
	InstancePort           int               `yaml:"port"`
	// RetryOnTooManyOutstandingRequests enqueues a query a scheduler
	// refused for its tenant's bound again, on another stream.
	RetryOnTooManyOutstandingRequests bool `yaml:"retry_on_too_many_outstanding_requests"`
}

// RegisterFlags registers the scheduler link's flags.
func (c *SchedulerConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.SchedulerAddress, "frontend.scheduler-address", "", "host:port of the query-scheduler(s) to enqueue queries to, instead of the frontend's own queue. A DNS name resolving to several addresses connects to each (so does a comma-separated list), and a query failing with one scheduler is retried on another.")
	f.DurationVar(&c.DNSLookupPeriod, "frontend.scheduler-dns-lookup-period", 10*time.Second, "How often -frontend.scheduler-address is resolved again.")
	f.IntVar(&c.WorkerConcurrency, "frontend.scheduler-worker-concurrency", 5, "Number of streams to each query-scheduler; each enqueues one query at a time.")
	c.GRPCClientConfig.RegisterFlagsWithPrefix(SchedulerTLSPrefix, grpcclient.Defaults{}, f)
	c.InstanceInterfaceNames = []string{"eth0", "en0"}
	f.Var((*flagext.StringSliceCSV)(&c.InstanceInterfaceNames), "frontend.instance-interface-names", "Network interfaces to read the address queriers send answers to from, when -frontend.instance-addr is empty and the gRPC server listens on every address.")
	f.StringVar(&c.InstanceAddr, "frontend.instance-addr", "", "IP address queriers send this frontend's answers to (with -frontend.scheduler-address). Empty: the gRPC listen address, else one of -frontend.instance-interface-names.")
	f.IntVar(&c.InstancePort, "frontend.instance-port", 0, "Port queriers send this frontend's answers to. 0: the gRPC server's port.")
	f.BoolVar(&c.RetryOnTooManyOutstandingRequests, "frontend.retry-on-too-many-outstanding-requests", false, "When multiple query-schedulers are available, re-enqueue queries that were rejected due to too many outstanding requests: a query a scheduler refuses for its tenant's -frontend.max-outstanding-requests-per-tenant is enqueued again on another scheduler stream, up to -frontend.scheduler-worker-concurrency more times, before the 429.")
}

// Validate checks the flags.
func (c *SchedulerConfig) Validate() error {
	if err := c.GRPCClientConfig.Validate(SchedulerTLSPrefix); err != nil {
		return err
	}
	if c.SchedulerAddress == "" {
		return nil
	}
	if _, err := dnsaddr.Split("frontend.scheduler-address", c.SchedulerAddress); err != nil {
		return err
	}
	if c.WorkerConcurrency <= 0 {
		return fmt.Errorf("-frontend.scheduler-worker-concurrency must be at least 1, got %d", c.WorkerConcurrency)
	}
	if c.DNSLookupPeriod <= 0 {
		return fmt.Errorf("-frontend.scheduler-dns-lookup-period must be positive, got %s", c.DNSLookupPeriod)
	}
	return nil
}

// WithSchedulers makes the frontend enqueue its queries to the
// query-schedulers of cfg over tls (nil: plaintext), advertising address
// for the queriers' answers, instead of queueing them itself.
func WithSchedulers(cfg SchedulerConfig, tls *tlsconfig.Client, address string) Option {
	return func(f *Frontend) {
		f.schedulers = &schedulers{cfg: cfg, tls: tls, address: address, lookup: net.DefaultResolver.LookupHost,
			requests: make(chan *schedRequest), pending: map[uint64]*schedRequest{}, conns: map[string]context.CancelFunc{}}
	}
}

// errSchedulerGone is a scheduler stream that ended with the query on it.
var errSchedulerGone = errors.New("the query-scheduler stream holding the query ended")

// schedulers enqueues queries to the query-schedulers and takes their
// answers from the queriers (QueryResult).
type schedulers struct {
	cfg     SchedulerConfig
	tls     *tlsconfig.Client
	address string
	logger  *slog.Logger
	lookup  dnsaddr.Lookup

	requests chan *schedRequest
	nextID   atomic.Uint64
	ready    atomic.Int64 // scheduler streams initialised

	mu      sync.Mutex
	pending map[uint64]*schedRequest
	conns   map[string]context.CancelFunc // scheduler address -> its connection's cancel
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	lastLog map[string]time.Time
}

type schedRequest struct {
	id       uint64
	tenant   string
	req      *schedulerpb.HTTPRequest
	priority int64
	enqueued chan enqueueResult // buffered: the stream never blocks on it
	result   chan result        // buffered: the first answer wins
	stream   *schedulerStream   // the stream it was enqueued on, under schedulers.mu
}

type enqueueResult struct {
	err     error
	cancels chan<- uint64
}

type schedulerStream struct{ addr string }

func (s *schedulers) start(logger *slog.Logger) {
	s.logger = logger
	s.lastLog = map[string]time.Time{}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.watch(ctx)
	}()
}

func (s *schedulers) stop() {
	s.cancel()
	s.wg.Wait()
}

// watch resolves -frontend.scheduler-address every lookup period and keeps
// a connection to each address.
func (s *schedulers) watch(ctx context.Context) {
	tick := time.NewTicker(s.cfg.DNSLookupPeriod)
	defer tick.Stop()
	for {
		addrs, err := dnsaddr.Resolve(ctx, s.lookup, "frontend.scheduler-address", s.cfg.SchedulerAddress)
		if err != nil {
			s.logger.Warn("keeping the current query-schedulers", "err", err)
		} else {
			s.setSchedulers(ctx, addrs)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// setSchedulers connects to new addresses (each verified against the
// name it was resolved from) and drops vanished ones.
func (s *schedulers) setSchedulers(ctx context.Context, addrs map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for addr, cancel := range s.conns {
		if _, ok := addrs[addr]; !ok {
			s.logger.Info("query-scheduler no longer resolved, disconnecting", "scheduler", addr)
			cancel()
			delete(s.conns, addr)
		}
	}
	for addr, authority := range addrs {
		if _, ok := s.conns[addr]; ok {
			continue
		}
		cctx, cancel := context.WithCancel(ctx)
		s.conns[addr] = cancel
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.runScheduler(cctx, addr, authority)
		}()
	}
}

// runScheduler keeps -frontend.scheduler-worker-concurrency streams open
// to one scheduler.
func (s *schedulers) runScheduler(ctx context.Context, addr, authority string) {
	cc, err := grpc.NewClient("passthrough:///"+addr, append(s.cfg.GRPCClientConfig.DialOptions(s.tls),
		// Verify the scheduler's certificate against the name configured,
		// not the address it resolved to.
		grpc.WithAuthority(authority),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{})),
	)...)
	if err != nil {
		s.logger.Error("cannot create a client for the query-scheduler", "scheduler", addr, "err", err)
		return
	}
	defer cc.Close()
	s.logger.Info("enqueueing queries to query-scheduler", "scheduler", addr, "concurrency", s.cfg.WorkerConcurrency, "frontend_address", s.address)
	var wg sync.WaitGroup
	for range s.cfg.WorkerConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bo := backoff.New(ctx, backoff.Config{MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second})
			for bo.Ongoing() {
				initialised, err := s.runStream(ctx, cc, addr)
				if ctx.Err() != nil {
					return
				}
				if initialised {
					bo.Reset()
				}
				s.logFailure(addr, err)
				bo.Wait()
			}
		}()
	}
	wg.Wait()
}

// logFailure logs a failing scheduler once every 10 seconds at most.
func (s *schedulers) logFailure(addr string, err error) {
	s.mu.Lock()
	last := s.lastLog[addr]
	now := time.Now()
	if now.Sub(last) < 10*time.Second {
		s.mu.Unlock()
		return
	}
	s.lastLog[addr] = now
	s.mu.Unlock()
	s.logger.Warn("error enqueueing queries to the query-scheduler; retrying with backoff (-"+SchedulerTLSPrefix+".tls-*)", "scheduler", addr, "err", err)
}

// runStream runs one FrontendLoop stream until it ends; then every query
// enqueued on it and not yet answered fails, and is retried elsewhere.
func (s *schedulers) runStream(ctx context.Context, cc *grpc.ClientConn, addr string) (initialised bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := schedulerpb.FrontendLoop(ctx, cc)
	if err != nil {
		return false, err
	}
	if err := stream.Send(&schedulerpb.FrontendToScheduler{Type: schedulerpb.FrontendToSchedulerType_INIT, FrontendAddress: s.address}); err != nil {
		return false, err
	}
	m, err := stream.Recv()
	if err != nil {
		return false, err
	}
	if m.GetStatus() != schedulerpb.SchedulerToFrontendStatus_OK {
		return false, fmt.Errorf("query-scheduler %s answered %v to INIT", addr, m.GetStatus())
	}
	st := &schedulerStream{addr: addr}
	s.ready.Add(1)
	defer s.ready.Add(-1)
	defer s.failStream(st)

	// One reader: a stream that breaks (a scheduler killed) is seen at
	// once, not at the next query sent on it.
	resps := make(chan *schedulerpb.SchedulerToFrontend)
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
			case resps <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	cancels := make(chan uint64, maxCancelsPerStream)
	answer := func() (*schedulerpb.SchedulerToFrontend, error) {
		select {
		case m := <-resps:
			return m, nil
		case err := <-errc:
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	for {
		select {
		case err := <-errc:
			return true, err
		case <-ctx.Done():
			return true, ctx.Err()
		case m := <-resps:
			// Unasked: the scheduler is shutting down.
			return true, fmt.Errorf("query-scheduler %s ended the stream: %v", addr, m.GetStatus())
		case r := <-s.requests:
			s.mu.Lock()
			r.stream = st
			s.mu.Unlock()
			err := stream.Send(&schedulerpb.FrontendToScheduler{Type: schedulerpb.FrontendToSchedulerType_ENQUEUE,
				QueryID: r.id, UserID: r.tenant, HttpRequest: r.req, FrontendAddress: s.address, Priority: r.priority})
			var m *schedulerpb.SchedulerToFrontend
			if err == nil {
				m, err = answer()
			}
			if err != nil {
				r.enqueued <- enqueueResult{err: fmt.Errorf("query-scheduler %s: %w: %w", addr, errSchedulerGone, err)}
				return true, err
			}
			switch m.GetStatus() {
			case schedulerpb.SchedulerToFrontendStatus_OK:
				r.enqueued <- enqueueResult{cancels: cancels}
			case schedulerpb.SchedulerToFrontendStatus_TOO_MANY_REQUESTS_PER_TENANT:
				r.enqueued <- enqueueResult{err: errTooManyRequests}
			case schedulerpb.SchedulerToFrontendStatus_SHUTTING_DOWN:
				r.enqueued <- enqueueResult{err: fmt.Errorf("query-scheduler %s is shutting down", addr)}
				return true, errors.New("query-scheduler is shutting down")
			default:
				r.enqueued <- enqueueResult{err: fmt.Errorf("query-scheduler %s refused the query: %s", addr, m.GetError())}
			}
		case id := <-cancels:
			err := stream.Send(&schedulerpb.FrontendToScheduler{Type: schedulerpb.FrontendToSchedulerType_CANCEL, QueryID: id})
			if err == nil {
				_, err = answer()
			}
			if err != nil {
				return true, err
			}
		}
	}
}

// failStream fails the queries enqueued on st that have no answer yet.
func (s *schedulers) failStream(st *schedulerStream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.pending {
		if r.stream == st {
			deliver(r, result{err: fmt.Errorf("query-scheduler %s: %w", st.addr, errSchedulerGone)})
		}
	}
}

func deliver(r *schedRequest, res result) {
	select {
	case r.result <- res:
	default: // answered already
	}
}

// roundTrip enqueues one try of a query to a scheduler and waits for its
// answer from a querier.
func (s *schedulers) roundTrip(ctx context.Context, tenantID string, req *frontendpb.HTTPRequest) (*frontendpb.HTTPResponse, error) {
	r := &schedRequest{id: s.nextID.Add(1), tenant: tenantID, req: schedulerpb.FromFrontendRequest(req), priority: priorityOf(ctx),
		enqueued: make(chan enqueueResult, 1), result: make(chan result, 1)}
	s.mu.Lock()
	s.pending[r.id] = r
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, r.id)
		s.mu.Unlock()
	}()
	// As Cortex: with more than one stream, a query refused for its
	// tenant's bound is tried on others, worker concurrency + 1 times in
	// all, so that it reaches at least two schedulers' streams.
	tries := 1
	if s.cfg.RetryOnTooManyOutstandingRequests && s.ready.Load() > 1 {
		tries = s.cfg.WorkerConcurrency + 1
	}
	var enq enqueueResult
	for try := 1; ; try++ {
		select {
		case s.requests <- r:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		select {
		case enq = <-r.enqueued:
		case <-ctx.Done():
			// A querier may already run it: cancel it once it is enqueued.
			go func() {
				if enq := <-r.enqueued; enq.err == nil {
					select {
					case enq.cancels <- r.id:
					default:
					}
				}
			}()
			return nil, ctx.Err()
		}
		if !errors.Is(enq.err, errTooManyRequests) || try >= tries {
			break
		}
	}
	if enq.err != nil {
		return nil, enq.err
	}
	select {
	case <-ctx.Done():
		select {
		case enq.cancels <- r.id:
		default:
		}
		return nil, ctx.Err()
	case res := <-r.result:
		return res.resp, res.err
	}
}

// queryResult takes a query's answer from a querier (or its scheduler).
func (s *schedulers) queryResult(ctx context.Context, m *schedulerpb.QueryResultRequest) error {
	tenantID, err := tenant.OrgID(ctx)
	if err != nil {
		return tenant.GRPCError(err)
	}
	s.mu.Lock()
	r := s.pending[m.GetQueryID()]
	s.mu.Unlock()
	if r == nil {
		// Canceled, retried elsewhere or answered already.
		return nil
	}
	if r.tenant != tenantID {
		return status.Errorf(codes.PermissionDenied, "query %d is not tenant %q's", m.GetQueryID(), tenantID)
	}
	if m.GetHttpResponse() == nil {
		deliver(r, result{err: fmt.Errorf("query %d: an empty answer", m.GetQueryID())})
		return nil
	}
	deliver(r, result{resp: schedulerpb.ToFrontendResponse(m.GetHttpResponse())})
	return nil
}

// QueryResult is the frontend's FrontendForQuerier service: the queriers
// that pulled its queries from a scheduler send the answers here.
func (f *Frontend) QueryResult(ctx context.Context, m *schedulerpb.QueryResultRequest) (*schedulerpb.QueryResultResponse, error) {
	if f.schedulers == nil {
		return nil, status.Error(codes.FailedPrecondition, "this query-frontend queues its queries itself: no -frontend.scheduler-address")
	}
	if err := f.schedulers.queryResult(ctx, m); err != nil {
		return nil, err
	}
	return &schedulerpb.QueryResultResponse{}, nil
}

// registerMetrics registers Cortex's metrics of the frontend's scheduler
// link.
func (s *schedulers) registerMetrics(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cortex_query_frontend_connected_schedulers", Help: "Number of schedulers this frontend is connected to."},
			func() float64 {
				s.mu.Lock()
				defer s.mu.Unlock()
				return float64(len(s.conns))
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cortex_query_frontend_queries_in_progress", Help: "Number of queries in progress handled by this frontend."},
			func() float64 {
				s.mu.Lock()
				defer s.mu.Unlock()
				return float64(len(s.pending))
			}),
	)
}

// ConnectedSchedulerStreams returns the number of scheduler streams ready.
func (f *Frontend) ConnectedSchedulerStreams() int {
	if f.schedulers == nil {
		return 0
	}
	return int(f.schedulers.ready.Load())
}
