package codec

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

func TestNegotiate(t *testing.T) {
	for accept, want := range map[string]string{
		"":          MIMEJSON,
		"*/*":       MIMEJSON,
		"text/html": MIMEJSON,
		"application/x-protobuf, application/json":          MIMEProtobuf,
		"application/x-cortex-query+proto,application/json": MIMECortexQuery,
		"application/json, application/x-protobuf":          MIMEJSON,
		"application/json;q=0.5, application/x-protobuf":    MIMEProtobuf,
		"application/x-protobuf;q=0, application/json":      MIMEJSON,
		"APPLICATION/X-PROTOBUF":                            MIMEProtobuf,
	} {
		if got := Negotiate(accept); got != want {
			t.Errorf("Negotiate(%q) = %q, want %q", accept, got, want)
		}
	}
}

// TestCompressionRoundTrip: each -querier.response-compression the
// frontend asks for is what the querier's handler answers in, and
// decompresses back to the handler's bytes.
func TestCompressionRoundTrip(t *testing.T) {
	answer := bytes.Repeat([]byte(`{"metric":{"job":"api"},"values":[[1,"2"]]},`), 1000)
	h := CompressionHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", MIMEJSON)
		_, _ = w.Write(answer)
	}))
	for _, c := range []string{"gzip", "snappy", "zstd", "", "none"} {
		if err := ValidateCompression(c); err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodGet, "/api/v1/query", nil)
		if enc := AcceptEncoding(c); enc != "" {
			r.Header.Set("Accept-Encoding", enc)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		enc := w.Header().Get("Content-Encoding")
		if want := AcceptEncoding(c); enc != want {
			t.Fatalf("%q: answered in Content-Encoding %q", c, enc)
		}
		if c != "" && c != "none" && w.Body.Len() >= len(answer)/5 {
			t.Errorf("%s: %d bytes for %d", c, w.Body.Len(), len(answer))
		}
		got, err := Decompress(w.Body.Bytes(), enc, int64(len(answer)), 0)
		if err != nil || !bytes.Equal(got, answer) {
			t.Fatalf("%q: decompressed %d bytes, %v", c, len(got), err)
		}
		var tooLarge *DecompressedTooLargeError
		if _, err := Decompress(w.Body.Bytes(), enc, int64(len(answer)-1), int64(len(answer))); enc != "" && !errors.As(err, &tooLarge) {
			t.Errorf("%q one byte over the bound: %v", c, err)
		}
	}
	// The first encoding of the asker's list that is known.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Accept-Encoding", "br, snappy, gzip")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if enc := w.Header().Get("Content-Encoding"); enc != "snappy" {
		t.Errorf("br, snappy, gzip answered in %q", enc)
	}
	if err := ValidateCompression("lz4"); err == nil || !strings.Contains(err.Error(), `-querier.response-compression="lz4" (querier.response_compression): unsupported`) {
		t.Errorf("lz4: %v", err)
	}
	if _, err := Decompress([]byte("x"), "br", 10, 0); err == nil || !strings.Contains(err.Error(), `Content-Encoding "br"`) {
		t.Errorf("br: %v", err)
	}
	if _, err := Decompress([]byte("not gzip"), "gzip", 10, 0); err == nil {
		t.Error("corrupt gzip decompressed")
	}
}

// TestInstantAnswersForTheRuler: a vector and a scalar in JSON, encoded as
// the frontend answers the ruler, decode to the same samples, and back to
// the same JSON; a native histogram known by its buckets only is refused.
func TestInstantAnswersForTheRuler(t *testing.T) {
	vector := `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\"b"},"value":[1700000000.500,"NaN"]},{"metric":{},"value":[-1.250,"-2e-07"]}]},"warnings":["w1"],"infos":["i1"]}`
	enc, err := FromJSON(nil, []byte(vector))
	if err != nil {
		t.Fatal(err)
	}
	back, err := ToJSON(nil, enc)
	if err != nil || string(back) != vector {
		t.Fatalf("%v: %s", err, back)
	}
	v, warnings, err := DecodeInstant(enc)
	if err != nil {
		t.Fatal(err)
	}
	got := v.(promql.Vector)
	if len(got) != 2 || !labels.Equal(got[0].Metric, labels.FromStrings("__name__", "up", "job", `a"b`)) || got[0].T != 1700000000500 || got[0].F == got[0].F ||
		got[1].Metric.Len() != 0 || got[1].T != -1250 || got[1].F != -2e-07 || len(warnings) != 1 || warnings[0] != "w1" {
		t.Fatalf("decoded %v, warnings %q", got, warnings)
	}
	scalar := `{"status":"success","data":{"resultType":"scalar","result":[12.5,"3"]}}`
	if enc, err = FromJSON(nil, []byte(scalar)); err != nil {
		t.Fatal(err)
	}
	if s, _, err := DecodeInstant(enc); err != nil || s.(promql.Scalar) != (promql.Scalar{T: 12500, V: 3}) {
		t.Fatalf("scalar: %v %v", s, err)
	}
	histogram := `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"le":"x"},"histogram":[1,{"count":"2","sum":"3","buckets":[[0,"0.5","1","2"]]}]}]}}`
	if enc, err = FromJSON(nil, []byte(histogram)); err != nil {
		t.Fatal(err)
	}
	if back, err := ToJSON(nil, enc); err != nil || string(back) != histogram {
		t.Fatalf("histogram: %v %s", err, back)
	}
	if _, _, err := DecodeInstant(enc); err == nil || !strings.Contains(err.Error(), `the native histogram sample of {le="x"} came as its buckets only`) {
		t.Fatalf("histogram by its buckets: %v", err)
	}
	if _, err := FromJSON(nil, []byte(`{"status":"error","errorType":"bad_data","error":"x"}`)); err == nil {
		t.Fatal("an error answer encoded")
	}
	if _, err := ToJSON(nil, []byte{0xff}); err == nil {
		t.Fatal("garbage decoded")
	}
}
