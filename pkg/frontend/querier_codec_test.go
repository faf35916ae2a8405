package frontend

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/cortex-tls/cortex/pkg/querier/codec"
	"github.com/cortex-tls/cortex/pkg/querier/querysharding"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// codecQuerier answers queries and range queries with the engine as the
// querier does: in the encoding its Accept header picks (the JSON being
// the protobuf turned back, which the querier's tests prove the same
// bytes), compressed as Accept-Encoding asks, with a warning on each
// answer. It records what it was asked and how it answered.
type codecQuerier struct {
	api *promAPI

	mu       sync.Mutex
	asked    map[string]bool // "Accept | Accept-Encoding -> Content-Type Content-Encoding"
	compress http.Handler
}

func newCodecQuerier(t *testing.T) *codecQuerier {
	return newCodecQuerierOn(newPromAPI(t))
}

func newCodecQuerierOn(api *promAPI) *codecQuerier {
	q := &codecQuerier{api: api, asked: map[string]bool{}}
	q.compress = codec.CompressionHandler(http.HandlerFunc(q.answer))
	return q
}

func (q *codecQuerier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	q.compress.ServeHTTP(rec, r)
	q.mu.Lock()
	q.asked[r.Header.Get("Accept")+" | "+r.Header.Get("Accept-Encoding")+" -> "+rec.Header().Get("Content-Type")+" "+rec.Header().Get("Content-Encoding")] = true
	q.mu.Unlock()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (q *codecQuerier) requests() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []string
	for k := range q.asked {
		out = append(out, k)
	}
	clear(q.asked)
	return out
}

func (q *codecQuerier) answer(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	var (
		qry promql.Query
		err error
	)
	if strings.HasSuffix(r.URL.Path, "/query_range") {
		start, _ := parseTimeMs(r.Form.Get("start"))
		end, _ := parseTimeMs(r.Form.Get("end"))
		step, _ := parseStepMs(r.Form.Get("step"))
		qry, err = q.api.engine.NewRangeQuery(r.Context(), q.api.st, nil, r.Form.Get("query"), time.UnixMilli(start), time.UnixMilli(end), time.Duration(step)*time.Millisecond)
	} else {
		ts, _ := parseTimeMs(r.Form.Get("time"))
		qry, err = q.api.engine.NewInstantQuery(r.Context(), q.api.st, nil, r.Form.Get("query"), time.UnixMilli(ts))
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	defer qry.Close()
	res := qry.Exec(r.Context())
	if res.Err != nil {
		http.Error(w, res.Err.Error(), http.StatusUnprocessableEntity)
		return
	}
	var warnings annotations.Annotations
	warnings.Add(errors.New("a warning about " + r.Form.Get("query")))
	a := codec.Answer{Value: res.Value, Warnings: []string{"a warning about " + r.Form.Get("query")}, DataJSON: func(b []byte) ([]byte, error) {
		if s, ok := res.Value.(promql.Scalar); ok {
			return append(b, `{"resultType":"scalar","result":[`+strconv.FormatFloat(float64(s.T)/1000, 'f', -1, 64)+`,"`+strconv.FormatFloat(s.V, 'f', -1, 64)+`"]}`...), nil
		}
		return nil, errors.New("unexpected " + string(res.Value.Type()))
	}}
	contentType := codec.Negotiate(r.Header.Get("Accept"))
	enc, err := codec.AppendProtobuf(nil, a, contentType)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if contentType == codec.MIMEJSON {
		if enc, err = codec.ToJSON(nil, enc); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	w.Header().Set("Content-Type", contentType)
	_, _ = w.Write(enc)
}

// TestQuerierCodecs: whatever -api.querier-default-codec and
// -querier.response-compression say, the frontend asks its queriers for
// that encoding and compression, and answers its clients the same bytes:
// split range queries (values, warnings) and instant queries.
func TestQuerierCodecs(t *testing.T) {
	querier := newCodecQuerier(t)
	queries := []struct {
		path   string
		params url.Values
	}{
		{"/prometheus/api/v1/query_range", rangeParams(`rate(metric_a[5m])`, 0, 3*86400, 600)},
		{"/prometheus/api/v1/query_range", rangeParams(`sum by (job) (metric_b)`, 3600, 2*86400+3600, 60)},
		{"/prometheus/api/v1/query_range", rangeParams(`metric_nothing`, 0, 86400, 60)},
		{"/prometheus/api/v1/query", url.Values{"query": {`metric_a`}, "time": {"7200"}}},
		{"/prometheus/api/v1/query", url.Values{"query": {`scalar(sum(metric_b))`}, "time": {"7200"}}},
	}
	var want []string
	for _, tc := range []struct {
		format, compression string
		asked               string
	}{
		{"json", "none", "application/json |  -> application/json "},
		{"json", "gzip", "application/json | gzip -> application/json gzip"},
		{"protobuf", "none", "application/x-protobuf, application/json |  -> application/x-protobuf "},
		{"protobuf", "gzip", "application/x-protobuf, application/json | gzip -> application/x-protobuf gzip"},
		{"protobuf", "snappy", "application/x-protobuf, application/json | snappy -> application/x-protobuf snappy"},
		{"protobuf", "zstd", "application/x-protobuf, application/json | zstd -> application/x-protobuf zstd"},
	} {
		t.Run(tc.format+"-"+tc.compression, func(t *testing.T) {
			h := newHarnessWith(t, querier, WithQuerierCodec(tc.format, tc.compression, 0))
			for i, q := range queries {
				code, body := h.get(context.Background(), "team", q.path, q.params)
				if code != http.StatusOK || !strings.Contains(body, `"warnings":["a warning about `) {
					t.Fatalf("%s %v: %d %s", q.path, q.params, code, body)
				}
				if want == nil || len(want) <= i {
					want = append(want, body)
				} else if body != want[i] {
					t.Errorf("%s %v answered\n%s\nwant, as json without compression:\n%s", q.path, q.params, body, want[i])
				}
			}
			compressed := false
			for _, g := range querier.requests() {
				switch {
				case g == tc.asked:
					compressed = true
				case tc.compression == "gzip" && g == strings.TrimSuffix(tc.asked, "gzip"):
					// gzhttp leaves answers under 1 KiB uncompressed.
				default:
					t.Errorf("the querier was asked and answered %q, want %q", g, tc.asked)
				}
			}
			if !compressed {
				t.Errorf("no answer was %q", tc.asked)
			}
		})
	}
}

// TestCompressedAnswersBounded: a compressed answer is decompressed at
// most to what the tenant's -frontend.max-query-response-size leaves (422
// as any answer over it), or to the frontend's gRPC message bound.
func TestCompressedAnswersBounded(t *testing.T) {
	querier := newCodecQuerier(t)
	limited := *defaultLimits(nil).For("x")
	limited.MaxQueryResponseSize = 2000
	h := newHarnessWith(t, querier, WithQuerierCodec("protobuf", "zstd", 0), WithLimits(defaultLimits(map[string]*validation.Limits{"small": &limited})))
	// About 40 KiB of JSON, a few KiB compressed.
	params := rangeParams(`metric_a`, 0, 86400, 60)
	if code, body := h.get(context.Background(), "team", "/prometheus/api/v1/query_range", params); code != http.StatusOK || len(body) < 30<<10 {
		t.Fatalf("unlimited tenant: %d, %d bytes", code, len(body))
	}
	want := `{"error":"the query response size exceeds limit (limit: 2000 bytes)","errorType":"execution","status":"error"}`
	if code, body := h.get(context.Background(), "small", "/prometheus/api/v1/query_range", params); code != http.StatusUnprocessableEntity || body != want {
		t.Fatalf("limited tenant: %d %s, want 422 %s", code, body, want)
	}
	h = newHarnessWith(t, querier, WithQuerierCodec("json", "gzip", 10<<10))
	if code, body := h.get(context.Background(), "team", "/prometheus/api/v1/query_range", params); code != http.StatusBadGateway || !strings.Contains(body, "the answer decompresses to more than 10240 bytes") {
		t.Fatalf("over the gRPC bound: %d %.300s", code, body)
	}
}

// TestRulerAskingProtobuf: an instant query asked with Cortex's ruler's
// Accept header is answered in its protobuf encoding, the same vector
// (or scalar) as in JSON; other clients get JSON.
func TestRulerAskingProtobuf(t *testing.T) {
	h := newHarnessWith(t, newCodecQuerier(t), WithQuerierCodec("protobuf", "snappy", 0))
	for _, query := range []string{`metric_a`, `scalar(sum(metric_b))`} {
		ask := func(accept string) *httptest.ResponseRecorder {
			req := httptest.NewRequest(http.MethodPost, "/prometheus/api/v1/query", strings.NewReader(url.Values{"query": {query}, "time": {"7200"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Accept", accept)
			req.Header.Set(tenant.HeaderName, "team")
			rec := httptest.NewRecorder()
			h.api.ServeHTTP(rec, req)
			return rec
		}
		jsonAnswer := ask("application/json")
		protoAnswer := ask("application/x-cortex-query+proto,application/json")
		if ct := jsonAnswer.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s asked for JSON: %s", query, ct)
		}
		if ct := protoAnswer.Header().Get("Content-Type"); ct != codec.MIMECortexQuery {
			t.Fatalf("%s asked for protobuf: %d %s %s", query, protoAnswer.Code, ct, protoAnswer.Body)
		}
		v, warnings, err := codec.DecodeInstant(protoAnswer.Body.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		back, err := codec.ToJSON(nil, protoAnswer.Body.Bytes())
		if err != nil || string(back) != jsonAnswer.Body.String() {
			t.Errorf("%s: protobuf answer %v reads as\n%s\nwant\n%s", query, err, back, jsonAnswer.Body)
		}
		if len(warnings) != 1 || warnings[0] != "a warning about "+query {
			t.Errorf("%s: warnings %q", query, warnings)
		}
		switch v := v.(type) {
		case promql.Vector:
			sort.Slice(v, func(i, j int) bool { return labels.Compare(v[i].Metric, v[j].Metric) < 0 })
			if len(v) != 2 || v[0].Metric.String() != `{__name__="metric_a", instance="1", job="a"}` || v[0].F != 120 || v[0].T != 7200000 {
				t.Errorf("%s: %v", query, v)
			}
		case promql.Scalar:
			if v.V != 121 || v.T != 7200000 {
				t.Errorf("%s: %v", query, v)
			}
		}
	}
}

// TestRulerGetsWholeHistograms: a whole instant query the ruler asks in
// protobuf is asked so of the querier, whose native histograms reach the
// ruler whole; the shards of a sharded one are merged in JSON, whose
// buckets the ruler refuses to evaluate.
func TestRulerGetsWholeHistograms(t *testing.T) {
	api := newPromAPIWith(t, `
load 1m
  histo_metric{job="h", instance="1"} {{schema:0 sum:5 count:4 buckets:[1 2 1]}}x100
  histo_metric{job="h", instance="2"} {{schema:1 sum:-3.5 count:7 z_bucket:1 z_bucket_w:0.001 n_buckets:[2 1] buckets:[3]}}x100
`)
	api.st = querysharding.Queryable{Queryable: api.st}
	querier := newCodecQuerierOn(api)
	sharded := *defaultLimits(nil).For("x")
	sharded.QueryVerticalShardSize = 2
	h := newHarnessWith(t, querier, WithQuerierCodec("json", "gzip", 0), WithLimits(defaultLimits(map[string]*validation.Limits{"sharded": &sharded})))
	ask := func(tenantID string) []byte {
		req := httptest.NewRequest(http.MethodPost, "/prometheus/api/v1/query", strings.NewReader(url.Values{"query": {`sum by (instance) (histo_metric)`}, "time": {"3000"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/x-cortex-query+proto,application/json")
		req.Header.Set(tenant.HeaderName, tenantID)
		rec := httptest.NewRecorder()
		h.api.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != codec.MIMECortexQuery {
			t.Fatalf("%s: %d %s %s", tenantID, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
		return rec.Body.Bytes()
	}
	qry, err := api.engine.NewInstantQuery(context.Background(), api.st, nil, `sum by (instance) (histo_metric)`, time.UnixMilli(3_000_000))
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	want := qry.Exec(context.Background())
	got, _, err := codec.DecodeInstant(ask("team"))
	if err != nil {
		t.Fatal(err)
	}
	if asked := querier.requests(); len(asked) != 1 || asked[0] != "application/x-cortex-query+proto, application/json | gzip -> application/x-cortex-query+proto " {
		t.Fatalf("the whole query was asked %q", asked)
	}
	wantVector, _ := want.Vector()
	gotVector := got.(promql.Vector)
	if len(gotVector) != 2 || len(wantVector) != 2 {
		t.Fatalf("got %v, want %v", gotVector, wantVector)
	}
	for i := range wantVector {
		if gotVector[i].H == nil || !gotVector[i].H.Equals(wantVector[i].H) || gotVector[i].T != wantVector[i].T || !labels.Equal(gotVector[i].Metric, wantVector[i].Metric) {
			t.Errorf("sample %d: got %v %v, want %v %v", i, gotVector[i].Metric, gotVector[i].H, wantVector[i].Metric, wantVector[i].H)
		}
	}
	if _, _, err := codec.DecodeInstant(ask("sharded")); err == nil || !strings.Contains(err.Error(), "came as its buckets only") {
		t.Fatalf("sharded: %v", err)
	}
	if asked := querier.requests(); len(asked) != 1 || asked[0] != "application/json | gzip -> application/json " {
		t.Fatalf("the shards were asked %q", asked)
	}
}
