package client

import (
	"context"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/user"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func defaultConfig(t *testing.T, args ...string) Config {
	t.Helper()
	var c Config
	f := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(f)
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFlags(t *testing.T) {
	c := defaultConfig(t)
	if c.GRPCCompression != "snappy-block" || c.MaxInflightPushRequests != 0 || c.HealthCheckConfig.UnhealthyThreshold != 0 || c.ConnectTimeout != 5*time.Second {
		t.Fatalf("defaults %+v, want Cortex's", c)
	}
	c = defaultConfig(t, "-ingester.client.max-inflight-push-requests=7", "-ingester.client.healthcheck.unhealthy-threshold=2", "-ingester.client.grpc-client-rate-limit=100", "-ingester.client.grpc-compression=zstd")
	if c.MaxInflightPushRequests != 7 || c.HealthCheckConfig.UnhealthyThreshold != 2 || c.RateLimit != 100 || c.GRPCCompression != "zstd" {
		t.Fatalf("flags not read: %+v", c)
	}
	c.MaxInflightPushRequests = -1
	c.GRPCCompression = "lz4"
	err := c.Validate()
	for _, want := range []string{"-ingester.client.max-inflight-push-requests must not be negative, got -1", `-ingester.client.grpc-compression="lz4"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}

// Past -ingester.client.max-inflight-push-requests pushes in flight on one
// connection, a push is refused at once, unsent; one finishing makes room.
func TestMaxInflightPushRequests(t *testing.T) {
	entered, release := make(chan struct{}, 8), make(chan struct{})
	gs := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		var req emptypb.Empty
		if err := stream.RecvMsg(&req); err != nil {
			return err
		}
		entered <- struct{}{}
		<-release
		return stream.SendMsg(&emptypb.Empty{})
	}))
	ln := testkit.Listen(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(ln)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	conn, err := Dial(ln.Addr().String(), defaultConfig(t, "-ingester.client.max-inflight-push-requests=2"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := user.InjectOrgID(context.Background(), "tenant-a")
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := conn.Push(ctx, &prompb.WriteRequest{})
			errs <- err
		}()
		<-entered
	}
	_, err = conn.Push(ctx, &prompb.WriteRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "too many inflight push requests in ingester client (-ingester.client.max-inflight-push-requests)") {
		t.Fatalf("third push: %v, want it refused", err)
	}
	if len(entered) != 0 {
		t.Fatal("the refused push reached the server")
	}
	close(release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Push(ctx, &prompb.WriteRequest{}); err != nil {
		t.Fatalf("push once the others finished: %v", err)
	}
}
