package distributor

import (
	"flag"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"gopkg.in/yaml.v3"

	"github.com/cortex-tls/cortex/pkg/ingester/client"

	"github.com/cortex-tls/cortex/pkg/util/remotewrite/rwtest"
)

func TestPushV2Disabled(t *testing.T) {
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.RemoteWriteV2Enabled = false }})
	r := c.pushV2(rwtest.V2Request())
	b := body(t, r)
	if r.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(b, "io.prometheus.write.v2.Request protobuf message is not accepted by this server (-distributor.remote-writev2-enabled is false)") {
		t.Fatalf("got %d %q, want 415 naming the flag", r.StatusCode, b)
	}
	for _, h := range []string{headerSamplesWritten, headerHistogramsWritten, headerExemplarsWritten} {
		if got := r.Header.Get(h); got != "0" {
			t.Errorf("%s = %q, want 0", h, got)
		}
	}
	if n, _ := c.stored(`__name__="http_requests_total",job="api"`); n != 0 {
		t.Errorf("stored on %d ingesters, want none", n)
	}
	// 1.0 is still served.
	if r := c.push(manySeries(2)); r.StatusCode != http.StatusNoContent {
		t.Fatalf("1.0 push: got %d %s, want 204", r.StatusCode, body(t, r))
	}
}

func TestPushV2WrittenHeadersOnRefusals(t *testing.T) {
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.MaxRecvMsgSize = 16 }})
	for name, header := range map[string]map[string]string{
		"too large":    nil,
		"bad encoding": {"Content-Encoding": "gzip"},
	} {
		t.Run(name, func(t *testing.T) {
			raw, err := rwtest.V2Request().Marshal()
			if err != nil {
				t.Fatal(err)
			}
			h := map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"}
			for k, v := range header {
				h[k] = v
			}
			r := c.pushRaw(snappy.Encode(nil, raw), h)
			if r.StatusCode/100 != 4 {
				t.Fatalf("got %d %s, want a 4xx", r.StatusCode, body(t, r))
			}
			if got := r.Header.Get(headerSamplesWritten); got != "0" {
				t.Errorf("%s = %q, want 0", headerSamplesWritten, got)
			}
		})
	}
}

// refuseSamples makes an ingester answer as one that refused n float
// samples of the series named by labels and stored everything else. (The
// fake keeps nothing of such a push: these tests look at the answer.)
func refuseSamples(series string, n uint32) func(req *client.PushRequest) error {
	return func(req *client.PushRequest) error {
		for j, ts := range req.Timeseries {
			if seriesString(ts.Labels) != series {
				continue
			}
			msg := "series " + series + ": out-of-order sample at timestamp 1"
			resp := &client.PushResponse{Refused: []*client.SeriesRefusal{{Series: uint32(j), Samples: n}}, First: msg, FirstSeries: uint32(j)}
			st, err := status.New(codes.InvalidArgument, msg+" (and 3 more refused samples or exemplars in this request)").WithDetails(resp)
			if err != nil {
				return err
			}
			return st.Err()
		}
		return nil
	}
}

// TestPushPartialWriteCountsQuorum checks the written counts of a request
// the ingesters stored in part: what a quorum of replicas stored, with a
// 400 naming the refused series when the quorum refused something.
func TestPushPartialWriteCountsQuorum(t *testing.T) {
	now := nowMs()
	good := series([]int64{now, now + 1}, "__name__", "good", "job", "j")
	bad := series([]int64{now, now + 1, now + 2}, "__name__", "bad", "job", "j")
	badName := seriesString(bad.Labels)
	for _, tc := range []struct {
		name      string
		rf        int
		refusing  int // replicas that refuse one sample of bad
		code      int
		samples   string
		wantInMsg string
	}{
		{"one replica", 1, 1, http.StatusBadRequest, "4", `series __name__="bad",job="j": out-of-order sample`},
		{"every replica", 3, 3, http.StatusBadRequest, "4", `series __name__="bad",job="j": out-of-order sample`},
		{"a quorum", 3, 2, http.StatusBadRequest, "4", `series __name__="bad",job="j": out-of-order sample`},
		{"outvoted", 3, 1, http.StatusNoContent, "5", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, clusterOpts{ingesters: tc.rf, rf: tc.rf})
			for _, f := range c.ingesters[:tc.refusing] {
				f.refuse = refuseSamples(badName, 1)
				if tc.refusing == 1 && tc.rf > 1 {
					// The quorum is the two others: the refusing replica
					// answers after the distributor did.
					f.delay.Store(int64(500 * time.Millisecond))
				}
			}
			req := &writev2.Request{Symbols: []string{""}}
			st := writev2.NewSymbolTable()
			for _, s := range []prompb.TimeSeries{good, bad} {
				var refs []uint32
				for _, l := range s.Labels {
					refs = append(refs, st.Symbolize(l.Name), st.Symbolize(l.Value))
				}
				var samples []writev2.Sample
				for _, smp := range s.Samples {
					samples = append(samples, writev2.Sample{Value: smp.Value, Timestamp: smp.Timestamp})
				}
				req.Timeseries = append(req.Timeseries, writev2.TimeSeries{LabelsRefs: refs, Samples: samples})
			}
			req.Symbols = st.Symbols()
			r := c.pushV2(req)
			b := body(t, r)
			if r.StatusCode != tc.code || !strings.Contains(b, tc.wantInMsg) || strings.Contains(b, "more refused") {
				t.Fatalf("got %d %q, want %d containing %q", r.StatusCode, b, tc.code, tc.wantInMsg)
			}
			if got := r.Header.Get(headerSamplesWritten); got != tc.samples {
				t.Errorf("%s = %s, want %s", headerSamplesWritten, got, tc.samples)
			}
		})
	}
}

// v2Series builds a 2.0 series of float samples in st's symbol table.
func v2Series(st *writev2.SymbolsTable, kv []string, samples ...writev2.Sample) writev2.TimeSeries {
	var refs []uint32
	for _, s := range kv {
		refs = append(refs, st.Symbolize(s))
	}
	return writev2.TimeSeries{LabelsRefs: refs, Samples: samples}
}

func TestPushV2ExemplarWithoutLabels(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	now := nowMs()
	st := writev2.NewSymbolTable()
	ts := v2Series(&st, []string{"__name__", "traced_total"}, writev2.Sample{Value: 1, Timestamp: now, StartTimestamp: now - 1000})
	ts.Exemplars = []writev2.Exemplar{{Value: 1, Timestamp: now}}
	r := c.pushV2(&writev2.Request{Symbols: st.Symbols(), Timeseries: []writev2.TimeSeries{ts}})
	if r.StatusCode != http.StatusNoContent || r.Header.Get(headerExemplarsWritten) != "1" {
		t.Fatalf("got %d %s with %s %q, want 204 with 1", r.StatusCode, body(t, r), headerExemplarsWritten, r.Header.Get(headerExemplarsWritten))
	}
	c.waitStored(`__name__="traced_total"`, 3)
	f := c.ingesters[0]
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := f.exemplar[`__name__="traced_total"`]; n != 1 {
		t.Errorf("ingester got %d exemplars, want 1", n)
	}
}

// TestPushV2Labels checks 2.0 series labels as Prometheus's receiver takes
// them: no metric name or a repeated label name refuses the series (400
// naming it, the rest written); unsorted labels are sorted and empty
// values dropped.
func TestPushV2Labels(t *testing.T) {
	now := nowMs()
	sample := writev2.Sample{Value: 1, Timestamp: now}
	for _, tc := range []struct {
		name   string
		labels []string
		code   int
		want   string // in the answer
		stored string // the series as stored, when it is
	}{
		{"no metric name", []string{"job", "j"}, http.StatusBadRequest, `sample missing metric name, series: "{job=\"j\"}"`, ""},
		{"duplicate label name", []string{"__name__", "m", "job", "a", "job", "b"}, http.StatusBadRequest, `duplicate label name: "job" metric "m{job=\"a\", job=\"b\"}"`, ""},
		{"unsorted", []string{"job", "j", "__name__", "m", "a", "1"}, http.StatusNoContent, "", `__name__="m",a="1",job="j"`},
		{"empty value", []string{"__name__", "m", "empty", "", "job", "j"}, http.StatusNoContent, "", `__name__="m",job="j"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, clusterOpts{})
			st := writev2.NewSymbolTable()
			req := &writev2.Request{Timeseries: []writev2.TimeSeries{
				v2Series(&st, tc.labels, sample),
				v2Series(&st, []string{"__name__", "good"}, sample),
			}}
			req.Symbols = st.Symbols()
			r := c.pushV2(req)
			b := body(t, r)
			if r.StatusCode != tc.code || !strings.Contains(b, tc.want) {
				t.Fatalf("got %d %q, want %d containing %q", r.StatusCode, b, tc.code, tc.want)
			}
			wantWritten := "1"
			if tc.stored != "" {
				wantWritten = "2"
				c.waitStored(tc.stored, 3)
			}
			if got := r.Header.Get(headerSamplesWritten); got != wantWritten {
				t.Errorf("%s = %s, want %s", headerSamplesWritten, got, wantWritten)
			}
			c.waitStored(`__name__="good"`, 3)
		})
	}
}

func TestPushV2SeriesWithoutSamples(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	now := nowMs()
	st := writev2.NewSymbolTable()
	empty := v2Series(&st, []string{"__name__", "empty"})
	empty.Exemplars = []writev2.Exemplar{{Value: 1, Timestamp: now}}
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{empty, v2Series(&st, []string{"__name__", "good"}, writev2.Sample{Value: 1, Timestamp: now})}}
	req.Symbols = st.Symbols()
	r := c.pushV2(req)
	b := body(t, r)
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(b, `TimeSeries must contain at least one sample or histogram for series "empty"`) {
		t.Fatalf("got %d %q, want 400 naming the empty series", r.StatusCode, b)
	}
	if got, want := r.Header.Get(headerSamplesWritten)+" "+r.Header.Get(headerExemplarsWritten), "1 0"; got != want {
		t.Errorf("samples and exemplars written = %s, want %s", got, want)
	}
	c.waitStored(`__name__="good"`, 3)
	if n, _ := c.stored(`__name__="empty"`); n != 0 {
		t.Errorf("empty series sent to %d ingesters", n)
	}
	if got := c.metric("cortex_discarded_exemplars_total", "reason", "invalid_series", "user", testTenant); got != 1 {
		t.Errorf("discarded exemplars = %v, want 1", got)
	}
}

func TestRemoteWriteV2Flag(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("distributor", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if !cfg.RemoteWriteV2Enabled {
		t.Fatal("-distributor.remote-writev2-enabled defaults to false, want true")
	}
	if err := fs.Parse([]string{"-distributor.remote-writev2-enabled=false"}); err != nil || cfg.RemoteWriteV2Enabled {
		t.Fatalf("flag: %v, enabled %v", err, cfg.RemoteWriteV2Enabled)
	}
	// Cortex's YAML key.
	if err := yaml.Unmarshal([]byte("remote_writev2_enabled: true\n"), &cfg); err != nil || !cfg.RemoteWriteV2Enabled {
		t.Fatalf("yaml: %v, enabled %v", err, cfg.RemoteWriteV2Enabled)
	}
}

// TestPushV1PartialWrite: remote write 1.0 gets the same partial
// acceptance, without the 2.0 written headers, as from Prometheus's
// receiver.
func TestPushV1PartialWrite(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	now := nowMs()
	good := series([]int64{now}, "__name__", "good")
	bad := series([]int64{now, now + 1}, "__name__", "bad")
	for _, f := range c.ingesters {
		f.refuse = refuseSamples(seriesString(bad.Labels), 1)
	}
	r := c.push(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{good, bad}})
	b := body(t, r)
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(b, `series __name__="bad": out-of-order sample`) {
		t.Fatalf("got %d %q, want 400 naming the refused series", r.StatusCode, b)
	}
	if h := r.Header.Get(headerSamplesWritten); h != "" {
		t.Errorf("1.0 answer has %s: %s", headerSamplesWritten, h)
	}
}
