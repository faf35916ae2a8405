package grpcencoding

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/encoding"
)

// pushBody is a distributor-to-ingester push: 1000 series of 8 labels,
// one sample each.
func pushBody(b *testing.B) []byte {
	req := &prompb.WriteRequest{}
	for i := range 1000 {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: "http_requests_total"}, {Name: "cluster", Value: "eu-west-1"},
				{Name: "instance", Value: fmt.Sprintf("10.0.%d.%d:9100", i/250, i%250)}, {Name: "job", Value: "api"},
				{Name: "method", Value: "GET"}, {Name: "namespace", Value: "prod"},
				{Name: "pod", Value: fmt.Sprintf("api-%d", i)}, {Name: "status", Value: "200"},
			},
			Samples: []prompb.Sample{{Timestamp: 1700000000000 + int64(i), Value: float64(i)}},
		})
	}
	body, err := req.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkCompressors compresses and decompresses one push with each
// compressor; the compressed-bytes metric is the size on the wire.
func BenchmarkCompressors(b *testing.B) {
	body := pushBody(b)
	compressors := map[string]encoding.Compressor{"gzip-stdlib": newStdlibGzip()}
	for _, name := range Names {
		compressors[name] = encoding.GetCompressor(name)
	}
	for _, name := range slices.Sorted(maps.Keys(compressors)) {
		c := compressors[name]
		b.Run(name, func(b *testing.B) {
			var buf bytes.Buffer
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				w, _ := c.Compress(&buf)
				_, _ = w.Write(body)
				_ = w.Close()
				n := buf.Len()
				r, err := c.Decompress(&buf)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, r); err != nil {
					b.Fatal(err)
				}
				if cl, ok := r.(io.Closer); ok {
					_ = cl.Close()
				}
				b.ReportMetric(float64(n), "compressed-bytes")
			}
		})
	}
}

// stdlibGzip is gRPC's own gzip compressor (the standard library's
// compress/gzip at its default level, writers pooled as gRPC pools them),
// which "gzip" replaces, measured side by side with it.
type stdlibGzip struct{ writers *sync.Pool }

func newStdlibGzip() stdlibGzip {
	return stdlibGzip{writers: &sync.Pool{New: func() any { return gzip.NewWriter(nil) }}}
}

func (stdlibGzip) Name() string { return "gzip-stdlib" }

func (g stdlibGzip) Compress(w io.Writer) (io.WriteCloser, error) {
	z := g.writers.Get().(*gzip.Writer)
	z.Reset(w)
	return pooledStdlibWriter{z, g.writers}, nil
}

func (stdlibGzip) Decompress(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }

type pooledStdlibWriter struct {
	*gzip.Writer
	pool *sync.Pool
}

func (w pooledStdlibWriter) Close() error {
	defer w.pool.Put(w.Writer)
	return w.Writer.Close()
}
