package worker

import (
	"container/list"
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/grafana/dskit/backoff"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/scheduler/schedulerpb"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
)

// querierIDHeader names this querier (-querier.id) on its streams to the
// query-frontends, as pkg/frontend's QuerierIDHeader.
const querierIDHeader = "x-cortex-querier-id"

// maxFrontendConns bounds the connections to the query-frontends the
// schedulers name; beyond it the least recently used one is closed.
const maxFrontendConns = 64

// queryResultTimeout bounds the sending of one answer to its frontend.
const queryResultTimeout = time.Minute

// address is the frontend or scheduler address pulled from.
func (c *Config) address() string {
	if c.SchedulerAddress != "" {
		return c.SchedulerAddress
	}
	return c.FrontendAddress
}

func (c *Config) addressFlag() string {
	if c.SchedulerAddress != "" {
		return "querier.scheduler-address"
	}
	return "querier.frontend-address"
}

// runScheduler keeps -querier.worker-parallelism streams open to one
// query-scheduler; each runs one query at a time and sends its answer to
// the frontend that asked.
func (w *Worker) runScheduler(ctx context.Context, cc *grpc.ClientConn, addr string) {
	w.logger.Info("pulling queries from query-scheduler", "scheduler", addr, "parallelism", w.cfg.Parallelism)
	var wg sync.WaitGroup
	for range w.cfg.Parallelism {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bo := backoff.New(ctx, backoff.Config{MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second})
			for bo.Ongoing() {
				served, err := w.querierLoop(ctx, cc)
				if ctx.Err() != nil {
					return
				}
				if served {
					bo.Reset()
				}
				w.logFailure(addr, err)
				bo.Wait()
			}
		}()
	}
	wg.Wait()
	w.notifyShutdown(addr, func(ctx context.Context) error { return schedulerpb.NotifyQuerierShutdown(ctx, cc, w.id) })
}

// querierLoop runs one QuerierLoop stream until it ends. A stream that
// ends cancels the query being run: the scheduler ends it when the
// frontend cancels the query, or dies with it.
func (w *Worker) querierLoop(ctx context.Context, cc *grpc.ClientConn) (served bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := schedulerpb.QuerierLoop(ctx, cc)
	if err != nil {
		return false, err
	}
	if err := stream.Send(&schedulerpb.QuerierToScheduler{QuerierID: w.id}); err != nil {
		return false, err
	}
	msgs := make(chan *schedulerpb.SchedulerToQuerier)
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
			w.runQuery(ctx, m)
			if ctx.Err() != nil {
				select {
				case err := <-errc:
					return served, err
				default:
					return served, ctx.Err()
				}
			}
			if err := stream.Send(&schedulerpb.QuerierToScheduler{}); err != nil {
				return served, err
			}
			served = true
		}
	}
}

// runQuery runs one query as its tenant and sends the answer to the
// frontend that asked, over -querier.frontend-client.tls-*.
func (w *Worker) runQuery(ctx context.Context, m *schedulerpb.SchedulerToQuerier) {
	addr := m.GetFrontendAddress()
	if _, _, err := net.SplitHostPort(addr); err != nil {
		w.logger.Warn("query from the query-scheduler names no valid frontend address; dropped", "frontend", addr, "err", err)
		return
	}
	resp := w.handle(ctx, schedulerpb.ToFrontendRequest(m.GetHttpRequest()))
	if ctx.Err() != nil {
		return
	}
	cc, err := w.frontendConn(addr)
	if err == nil {
		rctx, cancel := context.WithTimeout(tenant.Inject(ctx, m.GetUserID()), queryResultTimeout)
		_, err = schedulerpb.QueryResult(rctx, cc, &schedulerpb.QueryResultRequest{QueryID: m.GetQueryID(), HttpResponse: schedulerpb.FromFrontendResponse(resp)})
		cancel()
	}
	if err != nil {
		w.logFailure(addr, fmt.Errorf("sending the answer of query %d to the query-frontend: %w", m.GetQueryID(), err))
	}
}

// frontendConns are the connections to the frontends answers go to.
type frontendConns struct {
	mu    sync.Mutex
	conns map[string]*list.Element // address -> element holding *frontendConn
	lru   list.List
}

type frontendConn struct {
	addr string
	cc   *grpc.ClientConn
}

// frontendConn returns the connection to the frontend at addr, verified
// against that address, as Cortex's querier dials the address the
// frontend advertises.
func (w *Worker) frontendConn(addr string) (*grpc.ClientConn, error) {
	fc := &w.frontendPool
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.conns == nil {
		fc.conns = map[string]*list.Element{}
	}
	if e, ok := fc.conns[addr]; ok {
		fc.lru.MoveToFront(e)
		return e.Value.(*frontendConn).cc, nil
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, append(w.cfg.GRPCClientConfig.DialOptions(w.tls),
		append(tenant.ClientInterceptors(), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{})))...)...)
	if err != nil {
		return nil, err
	}
	fc.conns[addr] = fc.lru.PushFront(&frontendConn{addr: addr, cc: cc})
	for fc.lru.Len() > maxFrontendConns {
		old := fc.lru.Remove(fc.lru.Back()).(*frontendConn)
		delete(fc.conns, old.addr)
		_ = old.cc.Close()
	}
	return cc, nil
}

// closeFrontendConns closes every connection to the frontends.
func (w *Worker) closeFrontendConns() {
	fc := &w.frontendPool
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for _, e := range fc.conns {
		_ = e.Value.(*frontendConn).cc.Close()
	}
	fc.conns = nil
	fc.lru.Init()
}
