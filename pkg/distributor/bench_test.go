package distributor

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/remotewrite"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// benchRequest is the load of DESIGN.md's figures: 1,000 series of 8
// labels (and a name) per request, one sample each, sorted as Prometheus
// sends them.
func benchRequest() *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	now := nowMs()
	for i := range 1000 {
		req.Timeseries = append(req.Timeseries, series([]int64{now},
			"__name__", "bench_metric_total",
			"cluster", "eu-west-1",
			"env", "prod",
			"instance", fmt.Sprintf("10.0.%d.%d:9100", i/256, i%256),
			"job", "node-exporter",
			"namespace", "monitoring",
			"pod", fmt.Sprintf("node-exporter-%05d", i),
			"series", fmt.Sprint(i),
			"zone", "eu-west-1a",
		))
	}
	return req
}

func BenchmarkDecodeV1(b *testing.B) {
	raw, err := benchRequest().Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("pooled", func(b *testing.B) {
		var req prompb.WriteRequest
		b.ReportAllocs()
		for b.Loop() {
			if err := remotewrite.DecodeV1(raw, &req, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gogo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var req prompb.WriteRequest
			if err := req.Unmarshal(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPushHandler is the whole write path of a distributor in front
// of three ingesters (replication factor 3) that drop what they get.
func BenchmarkPushHandler(b *testing.B) {
	c := newCluster(b, clusterOpts{discard: true, limits: func(l *validation.Limits) { l.IngestionRate = 0 }})
	body := encodeV1(b, benchRequest())
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if r := c.pushRaw(body, nil); r.StatusCode != http.StatusNoContent {
			b.Fatalf("push: %d", r.StatusCode)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkShardAcrossRing is the sharding step alone: hashing each series
// of a request with its tenant and finding its replicas on a 3-ingester
// ring with 128 tokens each.
func BenchmarkShardAcrossRing(b *testing.B) {
	c := newCluster(b, clusterOpts{discard: true})
	req := benchRequest()
	userHash := shardByUser("bench")
	var bufDescs [5]ring.InstanceDesc
	var bufHosts, bufZones [5]string
	b.ReportAllocs()
	for b.Loop() {
		for i := range req.Timeseries {
			key := shardByAllLabels(userHash, req.Timeseries[i].Labels)
			if _, err := c.d.ring.Get(key, ring.WriteNoExtend, bufDescs[:0], bufHosts[:0], bufZones[:0]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(req.Timeseries))/b.Elapsed().Seconds(), "series/s")
}
