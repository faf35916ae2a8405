package querier

import (
	"math"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

// The expected bodies are those of Prometheus's web/api/v1/json_codec_test.go,
// so this encoder writes what Prometheus writes, byte for byte.
func TestJSONMatchesPrometheus(t *testing.T) {
	point := func(ts int64, f float64) any {
		return queryData{v: promql.Matrix{{Metric: labels.FromStrings("__name__", "foo"), Floats: []promql.FPoint{{T: ts, F: f}}}}}
	}
	pointJSON := func(v string) string {
		return `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"foo"},"values":[` + v + `]}]}}`
	}
	cases := []struct {
		data any
		want string
	}{
		{
			queryData{v: promql.Vector{
				{Metric: labels.FromStrings("__name__", "foo"), T: 1000, F: 1},
				{Metric: labels.FromStrings("__name__", "bar"), T: 2000, F: 2},
			}},
			`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"foo"},"value":[1,"1"]},{"metric":{"__name__":"bar"},"value":[2,"2"]}]}}`,
		},
		{
			queryData{v: promql.Matrix{
				{Metric: labels.FromStrings("__name__", "foo"), Floats: []promql.FPoint{{F: 1, T: 1000}}},
				{Metric: labels.FromStrings("__name__", "bar"), Floats: []promql.FPoint{{F: 2, T: 2000}}},
			}},
			`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"foo"},"values":[[1,"1"]]},{"metric":{"__name__":"bar"},"values":[[2,"2"]]}]}}`,
		},
		{
			queryData{v: promql.Matrix{{
				Metric: labels.FromStrings("__name__", "foo"),
				Histograms: []promql.HPoint{{T: 1000, H: &histogram.FloatHistogram{
					Schema:          2,
					ZeroThreshold:   0.001,
					ZeroCount:       12,
					Count:           10,
					Sum:             20,
					PositiveSpans:   []histogram.Span{{Offset: 3, Length: 2}, {Offset: 1, Length: 3}},
					NegativeSpans:   []histogram.Span{{Offset: 2, Length: 2}},
					PositiveBuckets: []float64{1, 2, 2, 1, 1},
					NegativeBuckets: []float64{2, 1},
				}}},
			}}},
			`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"foo"},"histograms":[[1,{"count":"10","sum":"20","buckets":[[1,"-1.6817928305074288","-1.414213562373095","1"],[1,"-1.414213562373095","-1.189207115002721","2"],[3,"-0.001","0.001","12"],[0,"1.414213562373095","1.6817928305074288","1"],[0,"1.6817928305074288","2","2"],[0,"2.378414230005442","2.82842712474619","2"],[0,"2.82842712474619","3.3635856610148576","1"],[0,"3.3635856610148576","4","1"]]}]]}]}}`,
		},
		{point(0, 0), pointJSON(`[0,"0"]`)},
		{point(1, 20), pointJSON(`[0.001,"20"]`)},
		{point(10, 20), pointJSON(`[0.010,"20"]`)},
		{point(100, 20), pointJSON(`[0.100,"20"]`)},
		{point(1001, 20), pointJSON(`[1.001,"20"]`)},
		{point(1010, 20), pointJSON(`[1.010,"20"]`)},
		{point(1100, 20), pointJSON(`[1.100,"20"]`)},
		{point(12345678123456555, 20), pointJSON(`[12345678123456.555,"20"]`)},
		{point(-1, 20), pointJSON(`[-0.001,"20"]`)},
		{point(0, math.NaN()), pointJSON(`[0,"NaN"]`)},
		{point(0, math.Inf(1)), pointJSON(`[0,"+Inf"]`)},
		{point(0, math.Inf(-1)), pointJSON(`[0,"-Inf"]`)},
		{point(0, 1.2345678e6), pointJSON(`[0,"1234567.8"]`)},
		{point(0, 1.2345678e-6), pointJSON(`[0,"0.0000012345678"]`)},
		{point(0, 1.2345678e-67), pointJSON(`[0,"1.2345678e-67"]`)},
		// Scalars and strings marshal themselves, in Prometheus too.
		{queryData{v: promql.Scalar{T: 1500, V: 2}}, `{"status":"success","data":{"resultType":"scalar","result":[1.5,"2"]}}`},
		{queryData{v: promql.String{T: 1000, V: "a<b"}}, `{"status":"success","data":{"resultType":"string","result":[1,"a\u003cb"]}}`},
		{queryData{v: promql.Vector{}}, `{"status":"success","data":{"resultType":"vector","result":[]}}`},
		// Label values are escaped as jsoniter's WriteString does: no HTML escaping.
		{seriesData{labels.FromStrings("__name__", "a", "v", "<&>\"\\\n\x01é")}, `{"status":"success","data":[{"__name__":"a","v":"<&>\"\\\n\u0001é"}]}`},
		// Other data goes through encoding/json, as Prometheus's jsoniter
		// standard-library configuration does.
		{[]string{"a<b"}, `{"status":"success","data":["a\u003cb"]}`},
	}
	q := &Querier{}
	for i, c := range cases {
		w := httptest.NewRecorder()
		q.respond(w, c.data, nil, "")
		if got := w.Body.String(); got != c.want {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, c.want)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("case %d: Content-Type %q", i, ct)
		}
	}
}
