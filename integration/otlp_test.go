package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// otlpTLS is the TLS configuration of an OpenTelemetry exporter presenting
// leaf's certificate (none when leaf is empty) and trusting the test CA.
func otlpTLS(t *testing.T, certs, leaf string) *tls.Config {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(certs, "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		t.Fatal("root.crt holds no certificate")
	}
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if leaf != "" {
		pair, err := tls.LoadX509KeyPair(filepath.Join(certs, leaf+".crt"), filepath.Join(certs, leaf+".key"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

// otlpExporter is the OpenTelemetry Go SDK's OTLP/HTTP metric exporter
// sending to addr's /api/v1/otlp/v1/metrics as tenantID, gzip-compressed,
// without retries.
func otlpExporter(t *testing.T, addr, tenantID string, tlsCfg *tls.Config) *otlpmetrichttp.Exporter {
	t.Helper()
	exp, err := otlpmetrichttp.New(context.Background(),
		otlpmetrichttp.WithEndpointURL("https://"+addr+"/api/v1/otlp/v1/metrics"),
		otlpmetrichttp.WithTLSClientConfig(tlsCfg),
		otlpmetrichttp.WithHeaders(map[string]string{"X-Scope-OrgID": tenantID}),
		otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression),
		otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}),
		otlpmetrichttp.WithTimeout(10*time.Second),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp
}

// TestOTLPIngestionMutualTLS: the OpenTelemetry Go SDK exports a counter,
// a gauge, a classic histogram and an exponential histogram over mutual TLS
// to a real cortex process, and PromQL reads them back under Prometheus'
// translated names, with the resource's job, instance and target_info; the
// client certificate's tenant binding applies, and a gzip body inflating
// past -distributor.otlp-max-recv-msg-size is refused with 413.
func TestOTLPIngestionMutualTLS(t *testing.T) {
	t.Parallel()
	pki := testkit.NewPKI(t, "root")
	pki.Issue(t, "server", certgen.Options{CommonName: "localhost", DNSNames: []string{"server", "localhost"}, IPs: testkit.LoopbackIPs()})
	pki.Issue(t, "client", certgen.Options{DNSNames: []string{"client", "localhost"}, IPs: testkit.LoopbackIPs()})
	pki.Issue(t, "tenant-a", certgen.Options{DNSNames: []string{"localhost"}})
	certs := pki.Dir
	// "client" is the identity of the process's own calls and of the
	// exporter below; "tenant-a" may act for tenant-a only.
	allow := filepath.Join(t.TempDir(), "client-tenants.yaml")
	if err := os.WriteFile(allow, []byte("clients:\n  client: ['*']\n  tenant-a: [tenant-a]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	proc, c := startBlocksProcess(t, certs,
		"-auth.client-tenants-file="+allow,
		"-auth.tenant-from-client-cert",
		"-distributor.otlp-max-recv-msg-size=1048576",
		"-blocks-storage.tsdb.enable-native-histograms",
		"-blocks-storage.filesystem.dir="+t.TempDir(),
		"-blocks-storage.bucket-store.sync-dir="+t.TempDir(),
		"-compactor.data-dir="+t.TempDir(),
	)

	// The application: an SDK meter provider read on demand, its
	// "queue.wait" histogram aggregated as an exponential histogram.
	res := resource.NewSchemaless(
		attribute.String("service.name", "checkout"),
		attribute.String("service.namespace", "shop"),
		attribute.String("service.instance.id", "pod-1"),
		attribute.String("deployment.environment", "prod"),
	)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(reader),
		sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "queue.wait"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}})))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	meter := mp.Meter("checkout")
	ctx := context.Background()

	requests, err := meter.Float64Counter("http.server.requests", metric.WithUnit("{request}"), metric.WithDescription("Requests served."))
	if err != nil {
		t.Fatal(err)
	}
	requests.Add(ctx, 5, metric.WithAttributes(attribute.String("method", "GET")))
	requests.Add(ctx, 2, metric.WithAttributes(attribute.String("method", "POST")))
	cpu, err := meter.Float64Gauge("process.cpu.utilization", metric.WithUnit("1"))
	if err != nil {
		t.Fatal(err)
	}
	cpu.Record(ctx, 0.42)
	duration, err := meter.Float64Histogram("http.server.request.duration", metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(0.1, 0.5, 1))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []float64{0.05, 0.3, 0.7, 2} {
		duration.Record(ctx, v)
	}
	wait, err := meter.Float64Histogram("queue.wait", metric.WithUnit("s"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []float64{1.5, 3, 3, 3} {
		wait.Record(ctx, v)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}

	// Without a client certificate the handshake fails: nothing is written.
	if err := otlpExporter(t, proc.HTTPAddr, "otel", otlpTLS(t, certs, "")).Export(ctx, &rm); err == nil {
		t.Fatal("an export without a client certificate succeeded")
	}
	if err := otlpExporter(t, proc.HTTPAddr, "otel", otlpTLS(t, certs, "client")).Export(ctx, &rm); err != nil {
		t.Fatalf("export over mutual TLS: %v", err)
	}

	at := time.Now().Add(time.Second)
	value := func(query string) (map[string]string, string) {
		t.Helper()
		r := c.query("otel", "query", url.Values{"query": {query}, "time": {at.Format(time.RFC3339Nano)}})
		if len(r.Data.Result) != 1 {
			t.Fatalf("%s: %d results, want 1: %+v", query, len(r.Data.Result), r.Data.Result)
		}
		return r.Data.Result[0].Metric, r.Data.Result[0].Value[1].(string)
	}
	metric, v := value(`http_server_requests_total{method="GET"}`)
	if v != "5" || metric["job"] != "shop/checkout" || metric["instance"] != "pod-1" {
		t.Errorf("http_server_requests_total{method=\"GET\"}: %v %s, want 5 of job shop/checkout, instance pod-1", metric, v)
	}
	for query, want := range map[string]string{
		`http_server_requests_total{method="POST"}`:                                              "2",
		`process_cpu_utilization_ratio`:                                                          "0.42",
		`http_server_request_duration_seconds_bucket{le="0.5"}`:                                  "2",
		`http_server_request_duration_seconds_bucket{le="+Inf"}`:                                 "4",
		`http_server_request_duration_seconds_count`:                                             "4",
		`http_server_request_duration_seconds_sum`:                                               "3.05",
		`histogram_count(queue_wait_seconds)`:                                                    "4",
		`histogram_sum(queue_wait_seconds)`:                                                      "10.5",
		`histogram_fraction(0, 2, queue_wait_seconds)`:                                           "0.25",
		`count(target_info{deployment_environment="prod",job="shop/checkout",instance="pod-1"})`: "1",
	} {
		if _, got := value(query); got != want {
			t.Errorf("%s = %s, want %s", query, got, want)
		}
	}
	// The certificate-to-tenant binding applies to OTLP as to remote
	// write: tenant-a's certificate may not write tenant-b, and without
	// X-Scope-OrgID its export lands in tenant-a.
	err = otlpExporter(t, proc.HTTPAddr, "tenant-b", otlpTLS(t, certs, "tenant-a")).Export(ctx, &rm)
	if err == nil || !strings.Contains(err.Error(), `client "tenant-a" may not act for tenant "tenant-b"`) {
		t.Errorf("tenant-a exporting as tenant-b: %v, want 403 naming both", err)
	}
	if err := otlpExporter(t, proc.HTTPAddr, "", otlpTLS(t, certs, "tenant-a")).Export(ctx, &rm); err != nil {
		t.Fatalf("tenant-a exporting without X-Scope-OrgID: %v", err)
	}
	if r := c.query("tenant-a", "query", url.Values{"query": {"process_cpu_utilization_ratio"}}); len(r.Data.Result) != 1 || r.Data.Result[0].Value[1] != "0.42" {
		t.Errorf("tenant-a holds %+v, want process_cpu_utilization_ratio 0.42", r.Data.Result)
	}
	if r := c.query("tenant-b", "query", url.Values{"query": {`{__name__=~".+"}`}}); len(r.Data.Result) != 0 {
		t.Errorf("tenant-b holds %+v", r.Data.Result)
	}

	// A gzip body of a few kilobytes that inflates past
	// -distributor.otlp-max-recv-msg-size is refused, not inflated.
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	if _, err := zw.Write(make([]byte, 8<<20)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "https://"+proc.HTTPAddr+"/api/v1/otlp/v1/metrics", &bomb)
	req.Header.Set("X-Scope-OrgID", "otel")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "decompressed request body is larger than -distributor.otlp-max-recv-msg-size (1048576 bytes)"; resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(answer), want) {
		t.Errorf("gzip bomb: %d %s, want 413 %q", resp.StatusCode, answer, want)
	}

	// Another tenant sees none of it.
	if r := c.query("other", "query", url.Values{"query": {`{__name__=~".+"}`}}); len(r.Data.Result) != 0 {
		t.Errorf("tenant other sees %+v", r.Data.Result)
	}
	// The distributor counted the export as the tenant's samples: 2 counter
	// series, 1 gauge, 4 buckets plus sum and count, 1 native histogram,
	// and target_info's samples: one per lookback interval between the
	// export's oldest and newest timestamps and the newest, so one or two
	// as the data points' timestamps fall.
	r := c.query("otel", "query", url.Values{"query": {`count_over_time(target_info[1h])`}, "time": {at.Format(time.RFC3339Nano)}})
	if len(r.Data.Result) != 1 {
		t.Fatalf("target_info samples: %+v", r.Data.Result)
	}
	infos, _ := strconv.ParseFloat(fmt.Sprint(r.Data.Result[0].Value[1]), 64)
	if got := metricOf(t, c.client, proc, `cortex_distributor_received_samples_total{user="otel"}`); got != 10+infos {
		t.Errorf("cortex_distributor_received_samples_total{user=\"otel\"} = %v, want 10 + %v target_info samples", got, infos)
	}
}
