package distributor

import (
	"net/http"
	"testing"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// BenchmarkPushHandlerHA is BenchmarkPushHandler's load sent by an HA
// replica: "elected" is stored with the replica label removed (every
// series encoded anew), "deduplicated" is another replica's request,
// answered 202.
func BenchmarkPushHandlerHA(b *testing.B) {
	withReplica := func(replica string) []byte {
		req := benchRequest()
		for i := range req.Timeseries {
			req.Timeseries[i].Labels = append(req.Timeseries[i].Labels, prompb.Label{Name: "__replica__", Value: replica})
		}
		return encodeV1(b, req)
	}
	for _, tc := range []struct {
		name string
		want int
	}{{"elected", http.StatusNoContent}, {"deduplicated", http.StatusAccepted}} {
		b.Run(tc.name, func(b *testing.B) {
			c := newHACluster(b, 0, func(l *validation.Limits) { l.IngestionRate = 0 })
			if r := c.pushRaw(withReplica("replica-0"), nil); r.StatusCode != http.StatusNoContent {
				b.Fatalf("electing replica-0: %d", r.StatusCode)
			}
			body := withReplica("replica-0")
			if tc.want == http.StatusAccepted {
				body = withReplica("replica-1")
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if r := c.pushRaw(body, nil); r.StatusCode != tc.want {
					b.Fatalf("push: %d, want %d", r.StatusCode, tc.want)
				}
			}
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
