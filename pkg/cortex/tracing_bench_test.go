package cortex

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/util/config"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// spanCounter is an OTLP trace collector that counts what it receives.
type spanCounter struct {
	ptraceotlp.UnimplementedGRPCServer
	spans atomic.Int64
}

func (s *spanCounter) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	s.spans.Add(int64(req.Traces().SpanCount()))
	return ptraceotlp.NewExportResponse(), nil
}

// BenchmarkPushTracing is a remote-write push of 1,000 series through a
// whole -target=all process (HTTP server, distributor, gRPC to the
// ingester, TSDB append): with tracing off (Cortex's default, jaeger with
// no JAEGER_* variable), and exporting every trace, or Cortex's default
// 0.1% of them, to a collector on loopback.
func BenchmarkPushTracing(b *testing.B) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	collector := &spanCounter{}
	srv := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(srv, collector)
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(srv.Stop)
	otel := []string{"-tracing.type=otel", "-tracing.otel.otlp-endpoint=" + lis.Addr().String()}
	for _, bc := range []struct {
		name string
		args []string
	}{
		{"off", nil},
		{"otel-ratio-0.001", otel},
		{"otel-ratio-1", append(otel, "-tracing.otel.sample-ratio=1")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c, ok := benchProcess(b, bc.args...)
			if !ok {
				b.Skip("no -tracing.* flags in this build")
			}
			url := "http://" + c.Server.HTTPAddr().String() + "/api/v1/push"
			base := time.Now().Add(-time.Hour).UnixMilli()
			client := &http.Client{Timeout: 10 * time.Second}
			step := int64(0)
			b.ReportAllocs()
			for b.Loop() {
				step++
				body := benchPushBody(b, base+step)
				resp, err := client.Post(url, "application/x-protobuf", bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
					b.Fatalf("push: %d", resp.StatusCode)
				}
			}
		})
	}
	b.Logf("spans received by the collector: %d", collector.spans.Load())
}

func benchPushBody(b *testing.B, ts int64) []byte {
	req := &prompb.WriteRequest{}
	for i := range 1000 {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: "bench_metric_total"}, {Name: "cluster", Value: "eu-west-1"},
				{Name: "instance", Value: fmt.Sprintf("10.0.%d.%d:9100", i/256, i%256)}, {Name: "job", Value: "node-exporter"},
				{Name: "series", Value: strconv.Itoa(i)},
			},
			Samples: []prompb.Sample{{Timestamp: ts, Value: float64(i)}},
		})
	}
	raw, err := req.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return snappy.Encode(nil, raw)
}

// benchProcess runs a -target=all process with args until b ends; false
// when args are not flags of this build.
func benchProcess(b *testing.B, args ...string) (*Cortex, bool) {
	b.Helper()
	dir := b.TempDir()
	base := []string{
		"-server.http-listen-address=127.0.0.1", "-server.http-listen-port=0",
		"-server.grpc-listen-address=127.0.0.1", "-server.grpc-listen-port=0",
		"-auth.enabled=false",
		"-blocks-storage.tsdb.dir=" + filepath.Join(dir, "tsdb"),
		"-blocks-storage.filesystem.dir=" + filepath.Join(dir, "blocks"),
		"-ruler-storage.filesystem.dir=" + filepath.Join(dir, "rules"),
		"-compactor.data-dir=" + filepath.Join(dir, "compactor"),
		"-blocks-storage.bucket-store.sync-dir=" + filepath.Join(dir, "tsdb-sync"),
		"-configs.database.uri=file:" + filepath.Join(dir, "configs.db"),
		"-alertmanager.storage.path=" + filepath.Join(dir, "alertmanager"),
		"-querier.active-query-tracker-dir=" + filepath.Join(dir, "active-query-tracker"),
		"-ingester.min-ready-duration=0s",
		"-ingester.lifecycler.addr=127.0.0.1",
		"-distributor.ingestion-rate-limit=0",
		"-log.level=warn",
	}
	var cfg Config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := config.Load(fs, append(base, args...), &cfg); err != nil {
		if len(args) > 0 {
			return nil, false
		}
		b.Fatal(err)
	}
	c, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("stopping: %v", err)
		}
	})
	testkit.Eventually(b, 30*time.Second, "every module running", func() bool {
		for _, s := range c.services {
			if s.State() != services.Running {
				return false
			}
		}
		return true
	})
	// The first push waits for the ingester to be ACTIVE in the ring.
	testkit.EventuallyNil(b, 30*time.Second, "a first push", func() error {
		resp, err := http.Post("http://"+c.Server.HTTPAddr().String()+"/api/v1/push", "application/x-protobuf", bytes.NewReader(benchPushBody(b, time.Now().Add(-2*time.Hour).UnixMilli())))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("push: %d", resp.StatusCode)
		}
		return nil
	})
	return c, true
}
