package integration

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestGRPCClientOptionsSingleProcess runs -target=all with mutual TLS and
// Cortex's gRPC client options on the ingester link: pushes go out zstd
// compressed, rate limited with backoff, under an in-flight bound and the
// health checks, and are read back.
func TestGRPCClientOptionsSingleProcess(t *testing.T) {
	t.Parallel()
	certs := certDir(t)
	flags := append(append(mtlsFlags(certs), ingesterClientFlags(certs)...),
		"-ingester.min-ready-duration=0s",
		"-ingester.lifecycler.addr=127.0.0.1",
		"-auth.enabled=false",
		"-blocks-storage.tsdb.dir="+t.TempDir(),
		"-ingester.client.grpc-compression=zstd",
		"-ingester.client.grpc-client-rate-limit=1000",
		"-ingester.client.grpc-client-rate-limit-burst=100",
		"-ingester.client.backoff-on-ratelimits=true",
		"-ingester.client.backoff-min-period=10ms",
		"-ingester.client.connect-timeout=2s",
		"-ingester.client.max-inflight-push-requests=50",
		"-ingester.client.healthcheck.unhealthy-threshold=3",
		"-ingester.client.healthcheck.interval=1s",
		"-querier.frontend-client.grpc-compression=snappy",
		"-querier.store-gateway-client.grpc-compression=gzip",
	)
	p := testkit.StartCortex(t, flags...)
	c := &cluster{t: t, certs: certs, distributor: p, querier: p, client: httpClient(tlsClient(t, clientConfig(certs, "client")))}
	waitReady(p, c.client)

	ts := time.Now().Add(-time.Minute).UnixMilli()
	for step := range 5 {
		req := &prompb.WriteRequest{}
		for i := range 100 {
			req.Timeseries = append(req.Timeseries, series("options_metric", i, ts+int64(step)*1000, float64(i)))
		}
		if code, body := c.push("ignored", req); code != http.StatusNoContent {
			t.Fatalf("push %d: %d %s", step, code, body)
		}
	}
	at := strconv.FormatFloat(float64(ts+4000)/1000, 'f', 3, 64)
	res := c.query("", "query", url.Values{"query": {"sum(options_metric)"}, "time": {at}})
	if len(res.Data.Result) != 1 || res.Data.Result[0].Value[1] != "4950" {
		t.Fatalf("sum(options_metric) = %+v, want 4950", res.Data.Result)
	}
}

// TestGRPCClientOptionsRefused checks that bad values of the gRPC client
// options stop the process with an error naming the flag.
func TestGRPCClientOptionsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"-ingester.client.grpc-compression=lz4"}, `-ingester.client.grpc-compression="lz4": supported values are gzip, snappy, snappy-block, zstd and empty (no compression)`},
		{[]string{"-ingester.client.grpc-client-rate-limit=0.5"}, "-ingester.client.grpc-client-rate-limit=0.5 with -ingester.client.grpc-client-rate-limit-burst=0 allows no call at all"},
		{[]string{"-querier.store-gateway-client.healthcheck.unhealthy-threshold=2", "-querier.store-gateway-client.healthcheck.interval=0s"}, "-querier.store-gateway-client.healthcheck.interval must be positive, got 0s"},
	} {
		code, out := testkit.RunCortex(t, append(testkit.LoopbackFlags(), tc.flags...)...)
		if code != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit code %d, want 1 and %q in the output:\n%s", tc.flags, code, tc.want, out)
		}
	}
}
