package worker

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"google.golang.org/grpc"

	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// fakeFrontend counts the worker streams connected to it and sends each
// one query.
type fakeFrontend struct {
	streams   atomic.Int64
	answered  atomic.Int64
	shutdowns chan string // the querier IDs that said they shut down
}

func (f *fakeFrontend) NotifyClientShutdown(_ context.Context, in *wrapperspb.StringValue) (*emptypb.Empty, error) {
	f.shutdowns <- in.GetValue()
	return &emptypb.Empty{}, nil
}

func (f *fakeFrontend) Process(s frontendpb.ProcessServer) error {
	f.streams.Add(1)
	defer f.streams.Add(-1)
	h := []*frontendpb.Header{{Key: "X-Scope-OrgID", Values: []string{"t1"}}}
	if err := s.Send(&frontendpb.FrontendToClient{HttpRequest: &frontendpb.HTTPRequest{Method: "GET", Url: "/x", Headers: h}}); err != nil {
		return err
	}
	m, err := s.Recv()
	if err != nil {
		return err
	}
	if m.HttpResponse.Code == 200 && string(m.HttpResponse.Body) == "t1" {
		f.answered.Add(1)
	}
	<-s.Context().Done()
	return nil
}

func serve(t *testing.T, lis net.Listener) *fakeFrontend {
	f := &fakeFrontend{shutdowns: make(chan string, 10)}
	srv := grpc.NewServer(grpc.ForceServerCodecV2(grpccodec.Codec{}))
	frontendpb.RegisterFrontendServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return f
}

var echoTenant = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = w.Write([]byte(r.Header.Get("X-Scope-OrgID")))
})

func newWorker(t *testing.T, addr string, parallelism int, lookup func(context.Context, string) ([]string, error)) *Worker {
	w, err := New(Config{FrontendAddress: addr, Parallelism: parallelism, DNSLookupPeriod: 100 * time.Millisecond,
		GRPCClientConfig: GRPCClientConfig{MaxRecvMsgSize: 1 << 20, MaxSendMsgSize: 1 << 20}}, nil, echoTenant, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lookup != nil {
		w.lookup = lookup
	}
	if err := services.StartAndAwaitRunning(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), w) })
	return w
}

// lateListener drops every connection until up is set, as a port nobody
// serves yet would, while keeping the port bound for the frontend.
type lateListener struct {
	net.Listener
	up      atomic.Bool
	dropped atomic.Int64
}

func (l *lateListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.up.Load() {
			return c, err
		}
		l.dropped.Add(1)
		c.Close()
	}
}

// TestReconnectsWhenFrontendStartsLate: a worker started before its
// frontend connects once it is up, with every one of its pull loops.
func TestReconnectsWhenFrontendStartsLate(t *testing.T) {
	lis := &lateListener{Listener: testkit.Listen(t)}
	f := serve(t, lis)
	newWorker(t, lis.Addr().String(), 3, nil)
	testkit.Eventually(t, 10*time.Second, "a connection attempt before the frontend is up", func() bool { return lis.dropped.Load() > 0 })
	lis.up.Store(true)
	testkit.Eventually(t, 10*time.Second, "3 streams", func() bool { return f.streams.Load() == 3 && f.answered.Load() == 3 })
}

// TestFollowsDNS: a name resolving to two frontends gets a worker pulling
// from each; one vanishing from DNS is dropped.
func TestFollowsDNS(t *testing.T) {
	lis1 := testkit.Listen(t)
	port := lis1.Addr().(*net.TCPAddr).Port
	lis2, err := net.Listen("tcp", "127.0.0.2:"+strconv.Itoa(port))
	if err != nil {
		t.Skip("no second loopback address:", err)
	}
	f1, f2 := serve(t, lis1), serve(t, lis2)
	var ips atomic.Value
	ips.Store([]string{"127.0.0.1", "127.0.0.2"})
	newWorker(t, "frontends.example:"+strconv.Itoa(port), 2, func(context.Context, string) ([]string, error) {
		return ips.Load().([]string), nil
	})
	testkit.Eventually(t, 10*time.Second, "both frontends", func() bool { return f1.streams.Load() == 2 && f2.streams.Load() == 2 })
	ips.Store([]string{"127.0.0.1"})
	testkit.Eventually(t, 10*time.Second, "second frontend dropped", func() bool { return f1.streams.Load() == 2 && f2.streams.Load() == 0 })
}

// TestNotifiesShutdown: a worker that stops tells each frontend it pulled
// from that its querier (-querier.id) shuts down, so that the frontend
// drops it from the tenants' shards without waiting for the forget delay.
func TestNotifiesShutdown(t *testing.T) {
	lis := testkit.Listen(t)
	f := serve(t, lis)
	w := newWorker(t, lis.Addr().String(), 2, nil)
	testkit.Eventually(t, 10*time.Second, "two streams", func() bool { return f.streams.Load() == 2 })
	if err := services.StopAndAwaitTerminated(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-f.shutdowns:
		if id != w.id || id == "" {
			t.Fatalf("shutdown notice for %q, want the worker's querier ID %q", id, w.id)
		}
	default:
		t.Fatal("the worker stopped without telling the frontend")
	}
}
