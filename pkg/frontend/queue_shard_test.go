package frontend

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
	"github.com/cortex-tls/cortex/pkg/querier/worker"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// TestOwnQueueShuffleShard: the frontend's own queue applies
// -frontend.max-queriers-per-tenant to the queriers connected to it, which
// name themselves with -querier.id.
func TestOwnQueueShuffleShard(t *testing.T) {
	limits := validation.Limits{MaxOutstandingPerTenant: 100, MaxQueriersPerTenant: 1}
	f, err := New(defaultConfig(), nil, nil, nil, WithLimits(validation.NewOverrides(limits, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), f) })
	lis := testkit.Listen(t)
	srv := grpc.NewServer(grpc.ForceServerCodecV2(grpccodec.Codec{}))
	frontendpb.RegisterFrontendServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	var mu sync.Mutex
	ranOn := map[string]int{}
	for _, id := range []string{"querier-1", "querier-2", "querier-3"} {
		w, err := worker.New(worker.Config{FrontendAddress: lis.Addr().String(), QuerierID: id, Parallelism: 2, DNSLookupPeriod: time.Minute,
			GRPCClientConfig: worker.GRPCClientConfig{MaxRecvMsgSize: 100 << 20, MaxSendMsgSize: 100 << 20}}, nil,
			http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				mu.Lock()
				ranOn[id]++
				mu.Unlock()
				fmt.Fprint(w, "ok")
			}), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := services.StartAndAwaitRunning(context.Background(), w); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), w) })
	}
	testkit.Eventually(t, 10*time.Second, "three queriers connected", func() bool { return f.ConnectedWorkers() == 6 })
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := &frontendpb.HTTPRequest{Method: "GET", Url: "/api/v1/labels", Headers: frontendpb.ToHeaders(http.Header{"X-Scope-Orgid": {"tenant-a"}})}
			if resp, err := f.RoundTrip(context.Background(), "tenant-a", req); err != nil || resp.Code != 200 {
				t.Errorf("%v %v", resp, err)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(ranOn) != 1 {
		t.Fatalf("tenant-a's queries ran on %v, want one querier", ranOn)
	}
}
