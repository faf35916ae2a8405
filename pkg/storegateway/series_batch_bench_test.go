package storegateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/cortex-tls/cortex/pkg/storegateway"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

// BenchmarkSeriesBatchSize reads 10,000 series of 2 hours at a 15s
// interval (480 samples, 5 chunks each) through a store-gateway's Series
// call over gRPC with mutual TLS on loopback, one series per message and
// 100 (-querier.store-gateway-series-batch-size 1 and 100). cpu-ms/op is
// the process's CPU time per call, steadier than the elapsed time on a
// shared machine.
func BenchmarkSeriesBatchSize(b *testing.B) {
	const nSeries = 10000
	bkt := storegateway.NewTestBucket(b)
	series := make([]storage.Series, nSeries)
	for i := range series {
		series[i] = storegateway.FloatSeries(labels.FromStrings("__name__", "bench", "instance", fmt.Sprintf("host-%05d", i)), 0, 15000, 480,
			func(t int64) float64 { return float64(t/15000%97) + float64(i) })
	}
	storegateway.UploadBlock(b, bkt, "t1", storegateway.WriteBlock(b, series))
	store := storegateway.NewTestStore(b, bkt)
	if err := store.SyncBlocks(context.Background()); err != nil {
		b.Fatal(err)
	}
	g := startGateway(b, store)
	conn := g.dial(b, g.pki.Client(b, "querier"), g.pki.CAPath)
	q := &prompb.Query{StartTimestampMs: 0, EndTimestampMs: 2 * 3600 * 1000, Matchers: []*prompb.LabelMatcher{eq("__name__", "bench")}}

	for _, batch := range []int64{1, 100} {
		b.Run(fmt.Sprintf("batch-%d", batch), func(b *testing.B) {
			b.ReportAllocs()
			ctx := storegateway.WithSeriesBatchSize(tenant.Inject(context.Background(), "t1"), batch)
			messages := 0
			cpu0 := processCPU(b)
			for b.Loop() {
				stream, err := conn.Series(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				n, chunks := 0, 0
				for {
					msg, err := stream.Recv()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					messages++
					n += len(msg.ChunkedSeries)
					for _, cs := range msg.ChunkedSeries {
						chunks += len(cs.Chunks)
					}
				}
				if n != nSeries || chunks != 5*nSeries {
					b.Fatalf("%d series of %d chunks, want %d of %d", n, chunks, nSeries, 5*nSeries)
				}
			}
			b.ReportMetric(float64(messages)/float64(b.N), "messages/op")
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}

// processCPU is the user and system CPU time the process has used: the
// store-gateway's and the client's ends of each call together.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
