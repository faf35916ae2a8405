package client

import (
	"testing"

	"github.com/prometheus/prometheus/prompb"
)

func TestPushRequestUnmarshal(t *testing.T) {
	in := &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{{
			Labels:    []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "node"}},
			Samples:   []prompb.Sample{{Value: 1, Timestamp: 1000}},
			Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 3, Timestamp: 1500}},
		}},
		Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "up", Help: "Up."}},
	}
	raw, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r := GetPushRequest()
	defer r.Release()
	if err := r.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	// The request owns its bytes: the codec's buffer may be reused.
	clear(raw)
	want, _ := in.Marshal()
	got, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("decoded %+v, want %+v", r.WriteRequest, *in)
	}
	if err := r.Unmarshal([]byte{0x0a, 0x10, 0x00}); err == nil {
		t.Fatal("malformed request accepted")
	}
}
