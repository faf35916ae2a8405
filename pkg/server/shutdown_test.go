package server

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// A request still running when -server.graceful-shutdown-timeout is up
// has its context canceled, and the server stops.
func TestShutdownCancelsRequestsAfterGracePeriod(t *testing.T) {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	cfg.HTTPListenAddress, cfg.HTTPListenPort = "127.0.0.1", 0
	cfg.GRPCListenAddress, cfg.GRPCListenPort = "127.0.0.1", 0
	cfg.GracefulShutdownTimeout = 200 * time.Millisecond
	logger := slog.New(slog.DiscardHandler)
	s, err := New(cfg, tlsconfig.NewLoader(logger, prometheus.NewRegistry()), logger)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	canceled := make(chan error, 1)
	s.HTTP.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done() // a query that only stops when told to
		canceled <- r.Context().Err()
	})
	svc := s.Service()
	if err := services.StartAndAwaitRunning(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	go func() {
		resp, err := http.Get("http://" + s.HTTPAddr().String() + "/slow")
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	stopped := make(chan struct{})
	go func() {
		_ = services.StopAndAwaitTerminated(context.Background(), svc)
		close(stopped)
	}()
	testkit.Eventually(t, 10*time.Second, "the server to stop", func() bool {
		select {
		case <-stopped:
			return true
		default:
			return false
		}
	})
	select {
	case err := <-canceled:
		if err == nil {
			t.Fatal("the request's context ended without an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server stopped with the request's context still live")
	}
}
