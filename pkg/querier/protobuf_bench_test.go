package querier

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

	"github.com/cortex-tls/cortex/pkg/querier/codec"
)

// benchMatrix is a range query's answer: 1,000 series of 6 labels, 240
// points each (4 hours at a 1-minute step).
func benchMatrix() promql.Matrix {
	m := make(promql.Matrix, 1000)
	for i := range m {
		points := make([]promql.FPoint, 240)
		for j := range points {
			points[j] = promql.FPoint{T: 1_700_000_000_000 + int64(j)*60_000, F: float64(i*j%977) * 1.25}
		}
		m[i] = promql.Series{Metric: labels.FromStrings("__name__", "http_requests_total", "cluster", "eu-west-1", "job", "api-server",
			"instance", "10.0.0."+strconv.Itoa(i%250)+":9090", "path", "/api/v1/items/"+strconv.Itoa(i/250), "status", "200"), Floats: points}
	}
	return m
}

// BenchmarkQueryAnswerCodec encodes a 1,000-series range answer at the
// querier (querier: encoding and compressing) and decodes it at the
// query-frontend into the Prometheus JSON it works on (frontend:
// decompressing and, for protobuf, turning it into JSON), side by side in
// JSON and in Cortex's protobuf encoding, without compression and with
// each -querier.response-compression. wire-B is the size of the answer
// sent, cpu-ns/op the process's CPU time per answer.
func BenchmarkQueryAnswerCodec(b *testing.B) {
	d := queryData{v: benchMatrix()}
	encodeJSON := func(dst []byte) []byte {
		dst = append(dst, `{"status":"success","data":`...)
		dst, _ = d.appendJSON(dst)
		return append(dst, '}')
	}
	encodeProtobuf := func(dst []byte) []byte {
		dst, _ = codec.AppendProtobuf(dst, codec.Answer{Value: d.v, DataJSON: d.appendJSON}, codec.MIMEProtobuf)
		return dst
	}
	for _, compression := range []string{"none", "gzip", "snappy", "zstd"} {
		encoding := compression
		if compression == "none" {
			encoding = ""
		}
		for _, format := range []string{"json", "protobuf"} {
			encode := encodeJSON
			if format == "protobuf" {
				encode = encodeProtobuf
			}
			// The querier's part: encoding, and compressing as its API's
			// handler does.
			var buf []byte
			h := codec.CompressionHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				buf = encode(buf[:0])
				_, _ = w.Write(buf)
			}))
			r := httptest.NewRequest(http.MethodGet, "/api/v1/query_range", nil)
			r.Header.Set("Accept-Encoding", codec.AcceptEncoding(strings.TrimPrefix(compression, "none")))
			answer := func() *httptest.ResponseRecorder {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				return w
			}
			wire := answer().Body
			uncompressed := len(buf)
			b.Run(compression+"/"+format+"/querier", func(b *testing.B) {
				b.ReportAllocs()
				cpu := processCPU(b)
				for b.Loop() {
					answer()
				}
				reportCPU(b, cpu)
				b.ReportMetric(float64(wire.Len()), "wire-B")
			})
			// The frontend's part: decompressing, and turning protobuf
			// into the JSON it works on.
			b.Run(compression+"/"+format+"/frontend", func(b *testing.B) {
				var out []byte
				b.ReportAllocs()
				cpu := processCPU(b)
				defer reportCPU(b, cpu)
				for b.Loop() {
					body, err := codec.Decompress(wire.Bytes(), encoding, 1<<30, int64(uncompressed))
					if err != nil {
						b.Fatal(err)
					}
					if format == "protobuf" {
						if out, err = codec.ToJSON(out[:0], body); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}
