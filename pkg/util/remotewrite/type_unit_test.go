package remotewrite

import (
	"testing"

	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

func TestDecodeV2TypeAndUnitLabels(t *testing.T) {
	st := writev2.NewSymbolTable()
	ref := func(kv ...string) []uint32 {
		var out []uint32
		for _, s := range kv {
			out = append(out, st.Symbolize(s))
		}
		return out
	}
	req := &writev2.Request{Timeseries: []writev2.TimeSeries{
		{LabelsRefs: ref("__name__", "rpc_duration_seconds_total", "__unit__", "stale", "job", "api"), Samples: []writev2.Sample{{Value: 1, Timestamp: 1}},
			Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, UnitRef: st.Symbolize("seconds")}},
		{LabelsRefs: ref("__name__", "up", "job", "api"), Samples: []writev2.Sample{{Value: 1, Timestamp: 1}}},
	}}
	req.Symbols = st.Symbols()
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		on         bool
		first, sec string
	}{
		{false, `__name__="rpc_duration_seconds_total",__unit__="stale",job="api"`, `__name__="up",job="api"`},
		{true, `__name__="rpc_duration_seconds_total",__type__="counter",__unit__="seconds",job="api"`, `__name__="up",job="api"`},
	} {
		d := V2Decoder{TypeAndUnitLabels: tc.on}
		var got prompb.WriteRequest
		var issues SeriesIssues
		if err := d.Decode(raw, &got, &issues); err != nil {
			t.Fatal(err)
		}
		if s := seriesString(got.Timeseries[0].Labels); s != tc.first {
			t.Errorf("type and unit labels %v: %s, want %s", tc.on, s, tc.first)
		}
		if s := seriesString(got.Timeseries[1].Labels); s != tc.sec {
			t.Errorf("type and unit labels %v, a series without metadata: %s, want %s", tc.on, s, tc.sec)
		}
	}
}
