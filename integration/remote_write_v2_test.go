package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage/remote"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// remoteWriteV2Client is Prometheus's own remote-write client sending
// remote write 2.0 to p's /api/v1/push over mutual TLS as tenantID.
func remoteWriteV2Client(t *testing.T, p *testkit.Cortex, certs, tenantID string) remote.WriteClient {
	t.Helper()
	u, err := url.Parse("https://" + p.HTTPAddr + "/api/v1/push")
	if err != nil {
		t.Fatal(err)
	}
	c, err := remote.NewWriteClient("cortex", &remote.ClientConfig{
		URL:     &config_util.URL{URL: u},
		Timeout: model.Duration(10 * time.Second),
		HTTPClientConfig: config_util.HTTPClientConfig{TLSConfig: config_util.TLSConfig{
			CAFile:     filepath.Join(certs, "root.crt"),
			CertFile:   filepath.Join(certs, "client.crt"),
			KeyFile:    filepath.Join(certs, "client.key"),
			ServerName: "localhost",
		}},
		Headers:       map[string]string{"X-Scope-OrgID": tenantID},
		WriteProtoMsg: "io.prometheus.write.v2.Request",
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// labelsOf is the labels of metric name with the other name/value pairs.
func labelsOf(name string, kv ...string) labels.Labels {
	return labels.FromStrings(append([]string{"__name__", name}, kv...)...)
}

// TestRemoteWriteV2MutualTLS: Prometheus's remote-write client sends
// remote write 2.0 over mutual TLS to a real cortex process. A request with
// one out-of-order sample among good ones is answered 400 naming the
// refused series, with written headers counting exactly what was stored;
// the good samples, a counter's start timestamp, an exemplar without
// labels, native histograms (integer exponential, and float with custom
// buckets) and the 2.0 metadata are all read back.
func TestRemoteWriteV2MutualTLS(t *testing.T) {
	t.Parallel()
	certs := certDir(t)
	flags := append(append(mtlsFlags(certs), ingesterClientFlags(certs)...),
		"-ingester.min-ready-duration=0s",
		"-ingester.lifecycler.addr=127.0.0.1",
		"-blocks-storage.tsdb.dir="+t.TempDir(),
		"-blocks-storage.tsdb.enable-native-histograms",
	)
	p := testkit.StartCortex(t, flags...)
	c := &cluster{t: t, certs: certs, distributor: p, querier: p, client: httpClient(tlsClient(t, clientConfig(certs, "client")))}
	waitReady(p, c.client)
	rw := remoteWriteV2Client(t, p, certs, "tenant-a")
	ctx := context.Background()

	now := time.Now().Truncate(time.Second).Add(-time.Minute).UnixMilli()
	store := func(req *writev2.Request) (remote.WriteResponseStats, error) {
		t.Helper()
		raw, err := req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return rw.Store(ctx, snappy.Encode(nil, raw), 0)
	}

	// The series that will get an out-of-order sample already has a newer one.
	st := writev2.NewSymbolTable()
	first := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: st.SymbolizeLabels(labelsOf("rw2_ooo", "job", "rw2"), nil),
		Samples:    []writev2.Sample{{Value: 1, Timestamp: now}},
	}}}
	first.Symbols = st.Symbols()
	stats, err := store(first)
	if err != nil || stats.Samples != 1 || stats.Histograms != 0 || stats.Exemplars != 0 {
		t.Fatalf("first write: %+v, %v; want 1 sample written and 204", stats, err)
	}

	st = writev2.NewSymbolTable()
	ts := func(name string) []uint32 { return st.SymbolizeLabels(labelsOf(name, "job", "rw2"), nil) }
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{
		{
			LabelsRefs: ts("rw2_requests_total"),
			Samples: []writev2.Sample{
				{Value: 5, Timestamp: now + 1000, StartTimestamp: now - 30_000},
				{Value: 7, Timestamp: now + 2000, StartTimestamp: now - 30_000},
			},
			Exemplars: []writev2.Exemplar{{Value: 7, Timestamp: now + 2000}},
			Metadata:  writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("Requests served."), UnitRef: st.Symbolize("requests")},
		},
		{
			// Out of order: older than the series' sample at now.
			LabelsRefs: ts("rw2_ooo"),
			Samples:    []writev2.Sample{{Value: 2, Timestamp: now - 10_000}},
		},
		{
			LabelsRefs: ts("rw2_latency_seconds"),
			Histograms: []writev2.Histogram{{
				Count: &writev2.Histogram_CountInt{CountInt: 6}, Sum: 3.5, Schema: 0,
				ZeroThreshold: 1e-128, ZeroCount: &writev2.Histogram_ZeroCountInt{ZeroCountInt: 0},
				PositiveSpans: []writev2.BucketSpan{{Offset: 0, Length: 2}}, PositiveDeltas: []int64{2, 2},
				Timestamp: now + 1000,
			}},
			Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM, HelpRef: st.Symbolize("Request latency.")},
		},
		{
			LabelsRefs: ts("rw2_custom_seconds"),
			Histograms: []writev2.Histogram{{
				Count: &writev2.Histogram_CountFloat{CountFloat: 4}, Sum: 1.5, Schema: -53,
				PositiveSpans: []writev2.BucketSpan{{Offset: 0, Length: 3}}, PositiveCounts: []float64{1, 2, 1},
				CustomValues: []float64{0.1, 1},
				Timestamp:    now + 1000,
			}},
		},
	}}
	req.Symbols = st.Symbols()
	stats, err = store(req)
	var recoverable remote.RecoverableError
	if err == nil || errors.As(err, &recoverable) || !strings.Contains(err.Error(), "400 Bad Request") ||
		!strings.Contains(err.Error(), `series {__name__="rw2_ooo", job="rw2"}: out-of-order sample at timestamp `+strconv.FormatInt(now-10_000, 10)) {
		t.Fatalf("write with an out-of-order sample: %v; want a 400 naming rw2_ooo, not to be retried", err)
	}
	if stats.Samples != 2 || stats.Histograms != 2 || stats.Exemplars != 1 {
		t.Fatalf("written: %+v; want 2 samples, 2 histograms and 1 exemplar", stats)
	}

	at := strconv.FormatFloat(float64(now+2000)/1000, 'f', 3, 64)
	for query, want := range map[string]string{
		// The start timestamp's zero sample, then 5 and 7.
		"count_over_time(rw2_requests_total[2m])": "3",
		"min_over_time(rw2_requests_total[2m])":   "0",
		"rw2_requests_total":                      "7",
		"count_over_time(rw2_ooo[2m])":            "1",
		"histogram_count(rw2_latency_seconds)":    "6",
		"histogram_sum(rw2_latency_seconds)":      "3.5",
		"histogram_count(rw2_custom_seconds)":     "4",
		// One of the 4 observations is in the first custom bucket.
		"histogram_fraction(0, 0.1, rw2_custom_seconds)": "0.25",
	} {
		res := c.query("tenant-a", "query", url.Values{"query": {query}, "time": {at}})
		if len(res.Data.Result) != 1 || res.Data.Result[0].Value[1] != want {
			t.Errorf("%s = %+v, want %s", query, res.Data.Result, want)
		}
	}

	// The exemplar without labels.
	code, body := do(t, c.client, http.MethodGet, "https://"+p.HTTPAddr+"/prometheus/api/v1/query_exemplars?"+url.Values{
		"query": {"rw2_requests_total"}, "start": {strconv.FormatInt(now/1000-60, 10)}, "end": {strconv.FormatInt(now/1000+60, 10)},
	}.Encode(), "tenant-a", nil)
	if code != http.StatusOK || !strings.Contains(body, `"exemplars":[{"labels":{},"value":"7","timestamp":`+strconv.FormatFloat(float64(now+2000)/1000, 'f', -1, 64)+`}]`) {
		t.Errorf("exemplars: %d %s", code, body)
	}

	// The 2.0 metadata, per metric family.
	code, body = do(t, c.client, http.MethodGet, "https://"+p.HTTPAddr+"/prometheus/api/v1/metadata", "tenant-a", nil)
	var md struct {
		Status string                                         `json:"status"`
		Data   map[string][]struct{ Type, Help, Unit string } `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &md); code != http.StatusOK || err != nil {
		t.Fatalf("metadata: %d %s", code, body)
	}
	if m := md.Data["rw2_requests_total"]; len(m) != 1 || m[0].Type != "counter" || m[0].Help != "Requests served." || m[0].Unit != "requests" {
		t.Errorf("metadata of rw2_requests_total = %+v", m)
	}
	if m := md.Data["rw2_latency_seconds"]; len(m) != 1 || m[0].Type != "histogram" || m[0].Help != "Request latency." {
		t.Errorf("metadata of rw2_latency_seconds = %+v", m)
	}
}

// TestRemoteWriteV2ReplicatedCounts: with three ingesters and a
// replication factor of 3, each a process of its own on mutual TLS, the
// written headers of a partly refused 2.0 request count what the quorum
// stored, once per sample rather than once per replica.
func TestRemoteWriteV2ReplicatedCounts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes")
	}
	t.Parallel()
	c := newCluster(t)
	rw := remoteWriteV2Client(t, c.distributor, c.certs, "tenant-a")
	now := time.Now().Truncate(time.Second).Add(-time.Minute).UnixMilli()
	store := func(req *writev2.Request) (remote.WriteResponseStats, error) {
		t.Helper()
		raw, err := req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return rw.Store(context.Background(), snappy.Encode(nil, raw), 0)
	}

	st := writev2.NewSymbolTable()
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: st.SymbolizeLabels(labelsOf("rw2r_ooo", "job", "rw2"), nil),
		Samples:    []writev2.Sample{{Value: 1, Timestamp: now}},
	}}}
	req.Symbols = st.Symbols()
	if stats, err := store(req); err != nil || stats.Samples != 1 {
		t.Fatalf("first write: %+v, %v; want 1 sample written", stats, err)
	}
	// The answer came with the quorum; the third replica may still be
	// creating the tenant's TSDB. Once it has the sample too, every
	// replica refuses the out-of-order one below.
	for i, p := range c.ingesters {
		p.EventuallyNil(30*time.Second, "ingester "+itoa(i)+" to store the first sample", func() error {
			if n := metricOf(t, c.client, p, "cortex_ingester_ingested_samples_total"); n != 1 {
				return fmt.Errorf("it ingested %v samples", n)
			}
			return nil
		})
	}

	st = writev2.NewSymbolTable()
	req = &writev2.Request{Timeseries: []writev2.TimeSeries{
		{
			LabelsRefs: st.SymbolizeLabels(labelsOf("rw2r_good", "job", "rw2"), nil),
			Samples:    []writev2.Sample{{Value: 1, Timestamp: now}, {Value: 2, Timestamp: now + 1000}},
		},
		{
			LabelsRefs: st.SymbolizeLabels(labelsOf("rw2r_ooo", "job", "rw2"), nil),
			Samples:    []writev2.Sample{{Value: 2, Timestamp: now - 10_000}, {Value: 3, Timestamp: now + 1000}},
		},
	}}
	req.Symbols = st.Symbols()
	stats, err := store(req)
	if err == nil || !strings.Contains(err.Error(), "400 Bad Request") || !strings.Contains(err.Error(), `series {__name__="rw2r_ooo", job="rw2"}: out-of-order sample`) {
		t.Fatalf("write with an out-of-order sample: %v; want a 400 naming rw2r_ooo", err)
	}
	if stats.Samples != 3 || stats.Histograms != 0 || stats.Exemplars != 0 {
		t.Fatalf("written: %+v; want 3 samples (each stored on every replica, counted once)", stats)
	}
	at := strconv.FormatFloat(float64(now+1000)/1000, 'f', 3, 64)
	for query, want := range map[string]string{
		"count_over_time(rw2r_good[2m])": "2",
		"count_over_time(rw2r_ooo[2m])":  "2",
	} {
		res := c.query("tenant-a", "query", url.Values{"query": {query}, "time": {at}})
		if len(res.Data.Result) != 1 || res.Data.Result[0].Value[1] != want {
			t.Errorf("%s = %+v, want %s", query, res.Data.Result, want)
		}
	}
}
