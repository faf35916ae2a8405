package querier

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// readClient is Prometheus's remote read client for one tenant and one
// response type.
func readClient(t *testing.T, srv *httptest.Server, path, tenantID string, rt prompb.ReadRequest_ResponseType) remote.ReadClient {
	t.Helper()
	u, err := url.Parse(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := remote.NewReadClient("cortex", &remote.ClientConfig{
		URL:                   &config_util.URL{URL: u},
		Timeout:               model.Duration(10 * time.Second),
		HTTPClientConfig:      config_util.DefaultHTTPClientConfig,
		Headers:               map[string]string{tenant.HeaderName: tenantID},
		ChunkedReadLimit:      1 << 20,
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{rt},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dumpSeries writes each series as its labels and its samples.
func dumpSeries(t *testing.T, ss storage.SeriesSet) string {
	t.Helper()
	var b strings.Builder
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		b.WriteString(s.Labels().String())
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				fmt.Fprintf(&b, " %d=%g", ts-t0, v)
			case chunkenc.ValHistogram:
				ts, h := it.AtHistogram(nil)
				fmt.Fprintf(&b, " %d=histogram(count %d)", ts-t0, h.Count)
			default:
				t.Fatalf("unexpected value type %v", vt)
			}
		}
		b.WriteString("\n")
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func readQuery(t *testing.T, start, end int64, ms ...*prompb.LabelMatcher) *prompb.Query {
	t.Helper()
	return &prompb.Query{StartTimestampMs: start, EndTimestampMs: end, Matchers: ms}
}

func TestRemoteRead(t *testing.T) {
	_, srv := apiCluster(t, clusterOpts{})
	const want = `{__name__="up", instance="x", job="a"} 0=1 15000=2 30000=3 45000=4 60000=5` + "\n" +
		`{__name__="up", instance="y", job="b"} 0=10 15000=20 30000=30 45000=40 60000=50` + "\n"
	up := &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}
	for _, rt := range []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS} {
		for _, path := range []string{"/prometheus/api/v1/read", "/api/prom/api/v1/read"} {
			t.Run(rt.String()+" "+path, func(t *testing.T) {
				ss, err := readClient(t, srv, path, "team-a", rt).Read(context.Background(), readQuery(t, t0, t0+60000, up), true)
				if err != nil {
					t.Fatal(err)
				}
				if got := dumpSeries(t, ss); got != want {
					t.Fatalf("got\n%swant\n%s", got, want)
				}
			})
		}
		t.Run(rt.String()+" time range, regexp and histogram", func(t *testing.T) {
			ss, err := readClient(t, srv, "/prometheus/api/v1/read", "team-a", rt).ReadMultiple(context.Background(), []*prompb.Query{
				readQuery(t, t0+15000, t0+30000, up, &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: "job", Value: "b|c"}),
				readQuery(t, t0, t0+60000, &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "requests_hist"}),
			}, true)
			if err != nil {
				t.Fatal(err)
			}
			// Sorted across queries from SAMPLES, in query order from a
			// stream.
			up := `{__name__="up", instance="y", job="b"} 15000=20 30000=30` + "\n"
			hist := `{__name__="requests_hist", job="a"} 60000=histogram(count 5)` + "\n"
			want := hist + up
			if rt == prompb.ReadRequest_STREAMED_XOR_CHUNKS {
				want = up + hist
			}
			if got := dumpSeries(t, ss); got != want {
				t.Fatalf("got\n%swant\n%s", got, want)
			}
		})
		t.Run(rt.String()+" another tenant", func(t *testing.T) {
			ss, err := readClient(t, srv, "/prometheus/api/v1/read", "team-b", rt).Read(context.Background(), readQuery(t, t0, t0+60000, up), true)
			if err != nil {
				t.Fatal(err)
			}
			if got := dumpSeries(t, ss); got != "" {
				t.Fatalf("team-b read team-a's series:\n%s", got)
			}
		})
	}
}

// rawRead posts a remote read request and returns the status, the
// Content-Type and the body.
func rawRead(t *testing.T, srv *httptest.Server, body []byte, tenantID string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/prometheus/api/v1/read", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	if tenantID != "" {
		req.Header.Set(tenant.HeaderName, tenantID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func encodeReadRequest(t *testing.T, req *prompb.ReadRequest) []byte {
	t.Helper()
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

// The streamed response is Prometheus's framing, read back with its
// chunked reader: one frame per query here, each series' chunks XOR
// encoded.
func TestRemoteReadStreamedFrames(t *testing.T) {
	_, srv := apiCluster(t, clusterOpts{})
	body := encodeReadRequest(t, &prompb.ReadRequest{
		Queries: []*prompb.Query{
			readQuery(t, t0, t0+60000, &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "job", Value: "a"}, &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}),
			readQuery(t, t0, t0+60000, &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "job", Value: "b"}),
		},
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{prompb.ReadRequest_STREAMED_XOR_CHUNKS},
	})
	code, ct, b := rawRead(t, srv, body, "team-a")
	if code != http.StatusOK || ct != "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse" {
		t.Fatalf("got %d %q: %s", code, ct, b)
	}
	r := remote.NewChunkedReader(bytes.NewReader(b), 1<<20, nil)
	var got []string
	for {
		var resp prompb.ChunkedReadResponse
		err := r.NextProto(&resp)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range resp.ChunkedSeries {
			var ls []string
			for _, l := range s.Labels {
				ls = append(ls, l.Name+"="+l.Value)
			}
			for _, c := range s.Chunks {
				got = append(got, fmt.Sprintf("query %d %s %s [%d,%d]", resp.QueryIndex, strings.Join(ls, ","), c.Type, c.MinTimeMs-t0, c.MaxTimeMs-t0))
			}
		}
	}
	want := []string{
		"query 0 __name__=up,instance=x,job=a XOR [0,60000]",
		"query 1 __name__=up,instance=y,job=b XOR [0,60000]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRemoteReadErrors(t *testing.T) {
	_, srv := apiCluster(t, clusterOpts{})
	up := &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}

	t.Run("body over the limit", func(t *testing.T) {
		code, _, b := rawRead(t, srv, make([]byte, RemoteReadMaxBodySize+1), "team-a")
		if want := fmt.Sprintf("remote read request body of %d bytes is over the limit of %d bytes\n", RemoteReadMaxBodySize+1, RemoteReadMaxBodySize); code != http.StatusRequestEntityTooLarge || string(b) != want {
			t.Fatalf("got %d %q, want 413 %q", code, b, want)
		}
	})
	t.Run("not snappy", func(t *testing.T) {
		code, _, b := rawRead(t, srv, []byte("not a read request"), "team-a")
		if code != http.StatusBadRequest || !strings.HasPrefix(string(b), "decoding the remote read request: snappy: corrupt input") {
			t.Fatalf("got %d %q", code, b)
		}
	})
	t.Run("bad regexp", func(t *testing.T) {
		body := encodeReadRequest(t, &prompb.ReadRequest{Queries: []*prompb.Query{
			readQuery(t, t0, t0+60000, &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: "job", Value: "("}),
		}})
		code, _, b := rawRead(t, srv, body, "team-a")
		if code != http.StatusBadRequest || !strings.HasPrefix(string(b), "invalid matcher in remote read request: error parsing regexp: missing closing ): `(`") {
			t.Fatalf("got %d %q", code, b)
		}
	})
	t.Run("no tenant", func(t *testing.T) {
		body := encodeReadRequest(t, &prompb.ReadRequest{Queries: []*prompb.Query{readQuery(t, t0, t0+60000, up)}})
		if code, _, b := rawRead(t, srv, body, ""); code != http.StatusUnauthorized {
			t.Fatalf("got %d %q", code, b)
		}
	})
}

// The tenant's query limits hold for remote read as for PromQL: 422 with
// the limit's message, before anything is streamed.
func TestRemoteReadLimits(t *testing.T) {
	up := &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "up"}
	_, srv := apiCluster(t, clusterOpts{limits: func(l *validation.Limits) { l.MaxSeriesPerQuery = 1 }})
	for _, rt := range []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS} {
		body := encodeReadRequest(t, &prompb.ReadRequest{
			Queries:               []*prompb.Query{readQuery(t, t0, t0+60000, up)},
			AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{rt},
		})
		code, _, b := rawRead(t, srv, body, "team-a")
		if code != http.StatusUnprocessableEntity || !strings.HasPrefix(string(b), "the query hit the max number of series limit (limit: 1 series") {
			t.Fatalf("%s: got %d %q", rt, code, b)
		}
	}
	// -querier.max-samples bounds the samples of a SAMPLES answer, as
	// Prometheus's -storage.remote.read-sample-limit does.
	_, srv = apiCluster(t, clusterOpts{cfg: func(c *Config) { c.MaxSamples = 4 }})
	body := encodeReadRequest(t, &prompb.ReadRequest{Queries: []*prompb.Query{readQuery(t, t0, t0+60000, up)}})
	code, _, b := rawRead(t, srv, body, "team-a")
	if want := "exceeded sample limit (4, set by -querier.max-samples): read fewer series or a shorter time range\n"; code != http.StatusBadRequest || string(b) != want {
		t.Fatalf("got %d %q, want 400 %q", code, b, want)
	}
}
