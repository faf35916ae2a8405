package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestQueryAnswerCodecs: -target=all processes with mutual TLS whose
// query-frontend asks its querier for JSON (the defaults: json, gzip) or
// Cortex's protobuf encoding compressed with snappy or zstd answer the
// same range and instant queries with the same values, statistics, warnings
// and infos; the protobuf ones' querier did answer in protobuf.
func TestQueryAnswerCodecs(t *testing.T) {
	t.Parallel()
	base := time.Now().Add(-40 * time.Minute).Truncate(time.Minute).UnixMilli()
	configs := []struct {
		name, contentType string
		flags             []string
	}{
		{"json-gzip", "application/json", nil},
		{"protobuf-snappy", "application/x-protobuf", []string{"-api.querier-default-codec=protobuf", "-querier.response-compression=snappy"}},
		{"protobuf-zstd", "application/x-protobuf", []string{"-api.querier-default-codec=protobuf", "-querier.response-compression=zstd"}},
	}
	queries := []struct {
		path   string
		params url.Values
	}{
		{"query_range", url.Values{"query": {`codec_requests_total`}, "start": {secs(base)}, "end": {secs(base + 29*60_000)}, "step": {"60"}, "stats": {"all"}}},
		{"query_range", url.Values{"query": {`sum by (job) (rate(codec_requests_total[5m]))`}, "start": {secs(base)}, "end": {secs(base + 29*60_000)}, "step": {"30"}}},
		// A gauge under rate(): an info that it may not be a counter.
		{"query_range", url.Values{"query": {`rate(codec_temperature[5m])`}, "start": {secs(base)}, "end": {secs(base + 29*60_000)}, "step": {"60"}}},
		{"query", url.Values{"query": {`codec_requests_total`}, "time": {secs(base + 20*60_000)}, "stats": {"all"}}},
		{"query", url.Values{"query": {`scalar(sum(codec_temperature))`}, "time": {secs(base + 20*60_000)}}},
		// Truncated by limit: a warning.
		{"query", url.Values{"query": {`codec_requests_total`}, "time": {secs(base + 20*60_000)}, "limit": {"2"}}},
	}
	answers := make([][]string, len(configs))
	var wg sync.WaitGroup
	for i, cfg := range configs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, client := singleProcess(t, append([]string{"-auth.enabled=false", "-querier.split-queries-by-interval=10m"}, cfg.flags...)...)
			pushCodecSeries(t, client, p, base)
			for _, q := range queries {
				var body string
				p.EventuallyNil(30*time.Second, "the pushed samples queried", func() error {
					code, b, _, err := askQuery(t, client, p, "", q.path, q.params)
					if err != nil || code != http.StatusOK || !bytes.Contains([]byte(b), []byte(`"result":[`)) || bytes.Contains([]byte(b), []byte(`"result":[]`)) {
						return fmt.Errorf("%s %v: %d %.300s %v", q.path, q.params, code, b, err)
					}
					body = b
					return nil
				})
				answers[i] = append(answers[i], withoutTimings(t, body))
			}
			if got := metricOf(t, client, p, `cortex_querier_codec_response_size_count{content_type="`+cfg.contentType+`"}`); got < float64(len(queries)) {
				t.Errorf("%s: %v answers of the querier in %s", cfg.name, got, cfg.contentType)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i, q := range queries {
		for c := 1; c < len(configs); c++ {
			if answers[c][i] != answers[0][i] {
				t.Errorf("%s %v: %s answered\n%s\n%s answered\n%s", q.path, q.params, configs[c].name, answers[c][i], configs[0].name, answers[0][i])
			}
		}
	}
	for i, want := range []string{`"result":[{"metric":{"__name__":"codec_requests_total","instance":"i-0","job":"api"},"values":[[`, `"result":[{"metric":{"job":"api"}`, `"infos":["PromQL info: metric might not be a counter`, `"stats":{"samples":{`, `"resultType":"scalar"`, `"warnings":["results truncated due to limit"]`} {
		if !bytes.Contains([]byte(answers[0][i]), []byte(want)) {
			t.Errorf("%s %v answered %.500s, without %s", queries[i].path, queries[i].params, answers[0][i], want)
		}
	}
}

// withoutTimings is an answer with its statistics' timings, which differ
// from one evaluation to the next, left out.
func withoutTimings(t *testing.T, body string) string {
	t.Helper()
	var a map[string]any
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if d, ok := a["data"].(map[string]any); ok {
		if s, ok := d["stats"].(map[string]any); ok {
			delete(s, "timings")
		}
	}
	out, _ := json.Marshal(a)
	return string(out)
}

// pushCodecSeries writes 40 minutes of a counter (4 series, 2 jobs) and a
// gauge, one sample a minute from base.
func pushCodecSeries(t *testing.T, client *http.Client, p *testkit.Cortex, base int64) {
	t.Helper()
	req := &prompb.WriteRequest{}
	for i := range 4 {
		ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "codec_requests_total"}, {Name: "instance", Value: "i-" + strconv.Itoa(i)}, {Name: "job", Value: []string{"api", "db"}[i%2]}}}
		for m := range 40 {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: base + int64(m)*60_000, Value: float64(m * (i + 1) * 7)})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	gauge := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "codec_temperature"}, {Name: "room", Value: "a \"quoted\" room"}}}
	for m := range 40 {
		gauge.Samples = append(gauge.Samples, prompb.Sample{Timestamp: base + int64(m)*60_000, Value: 20 + float64(m%7)/3})
	}
	req.Timeseries = append(req.Timeseries, gauge)
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	httpReq, _ := http.NewRequest(http.MethodPost, "https://"+p.HTTPAddr+"/api/v1/push", bytes.NewReader(snappy.Encode(nil, raw)))
	httpReq.Header.Set("Content-Encoding", "snappy")
	httpReq.Header.Set("Content-Type", "application/x-protobuf")
	httpReq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := client.Do(httpReq)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("push: %d %s", resp.StatusCode, body)
	}
}
