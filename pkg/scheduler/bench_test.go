package scheduler_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/frontend"
	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
	"github.com/cortex-tls/cortex/pkg/querier/worker"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// newDirectTopology is a frontend queueing queries itself and a querier
// worker pulling from it, over plaintext loopback gRPC.
func newDirectTopology(b testing.TB, handler http.HandlerFunc) *frontend.Frontend {
	b.Helper()
	var fcfg frontend.Config
	flagDefaults(fcfg.RegisterFlags)
	f, err := frontend.New(fcfg, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	addr := serve(b, func(g *grpc.Server) { frontendpb.RegisterFrontendServer(g, f) })
	start(b, f)
	var wcfg worker.Config
	flagDefaults(wcfg.RegisterFlags)
	wcfg.FrontendAddress = addr
	wcfg.Parallelism = 2
	w, err := worker.New(wcfg, nil, handler, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	start(b, w)
	testkit.Eventually(b, 10*time.Second, "the querier connected to the frontend", func() bool { return f.ConnectedWorkers() == 2 })
	return f
}

// BenchmarkSchedulerOverhead is the latency of one query through a
// query-frontend, its querier answering at once with a small JSON body:
// queued in the frontend itself, and enqueued to a query-scheduler (one
// more gRPC hop, and the answer sent to the frontend by a unary call). The
// difference of the two is the scheduler's cost per query.
func BenchmarkSchedulerOverhead(b *testing.B) {
	const body = `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"api"},"value":[1733580000,"1"]}]}}`
	answer := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}
	req := query("tenant-a", "/prometheus/api/v1/query?query=up")
	run := func(b *testing.B, f *frontend.Frontend) {
		for b.Loop() {
			resp, err := f.RoundTrip(context.Background(), "tenant-a", req)
			if err != nil || resp.Code != 200 {
				b.Fatalf("%v %v", resp, err)
			}
		}
	}
	b.Run("frontend-queue", func(b *testing.B) { run(b, newDirectTopology(b, answer)) })
	b.Run("query-scheduler", func(b *testing.B) { run(b, newTopology(b, answer).front) })
}
