package codec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzhttp"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
)

// The values of -querier.response-compression, also the Content-Encoding
// of answers so compressed.
const (
	CompressionGzip   = "gzip"
	CompressionSnappy = "snappy"
	CompressionZstd   = "zstd"
	CompressionNone   = ""
)

// ValidateCompression checks -querier.response-compression; "none" is
// accepted for no compression beside Cortex's "".
func ValidateCompression(c string) error {
	switch c {
	case CompressionGzip, CompressionSnappy, CompressionZstd, CompressionNone, "none":
		return nil
	}
	return fmt.Errorf("-querier.response-compression=%q (querier.response_compression): unsupported; use gzip, snappy, zstd, or none (or empty) for no compression", c)
}

// AcceptEncoding is the Accept-Encoding header the query-frontend sends
// its queriers for -querier.response-compression (empty: none).
func AcceptEncoding(c string) string {
	if c == "none" {
		return ""
	}
	return c
}

// CompressionHandler compresses h's answers with the first encoding of
// the asker's Accept-Encoding it knows, as Cortex's query API does: zstd,
// snappy (its framed format) or gzip (gzhttp, which leaves small answers
// as they are).
func CompressionHandler(h http.Handler) http.Handler {
	gz := gzhttp.GzipHandler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for enc := range strings.SplitSeq(r.Header.Get("Accept-Encoding"), ",") {
			enc, _, _ = strings.Cut(enc, ";")
			switch strings.ToLower(strings.TrimSpace(enc)) {
			case CompressionZstd:
				zw := zstdWriters.Get().(*zstd.Encoder)
				zw.Reset(w)
				serveCompressed(w, r, h, CompressionZstd, zw)
				zstdWriters.Put(zw)
				return
			case CompressionSnappy:
				serveCompressed(w, r, h, CompressionSnappy, snappy.NewBufferedWriter(w))
				return
			case CompressionGzip:
				gz.ServeHTTP(w, r)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// zstdWriters are reused: a new encoder allocates about 20 MiB of
// windows and tables (BenchmarkQueryAnswerCodec's zstd/json/querier, 2
// cores, 2026-12-07), ten times a 1,000-series answer's JSON.
var zstdWriters = sync.Pool{New: func() any {
	zw, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	return zw
}}

func serveCompressed(w http.ResponseWriter, r *http.Request, h http.Handler, encoding string, cw io.WriteCloser) {
	w.Header().Set("Content-Encoding", encoding)
	w.Header().Add("Vary", "Accept-Encoding")
	h.ServeHTTP(&compressedWriter{ResponseWriter: w, w: cw}, r)
	_ = cw.Close()
}

// compressedWriter writes an answer's body through a compressor.
type compressedWriter struct {
	http.ResponseWriter
	w io.Writer
}

func (c *compressedWriter) Write(b []byte) (int, error) { return c.w.Write(b) }

// WriteHeader drops a Content-Length the handler set for the
// uncompressed body.
func (c *compressedWriter) WriteHeader(code int) {
	c.Header().Del("Content-Length")
	c.ResponseWriter.WriteHeader(code)
}

// Unwrap gives http.ResponseController the underlying writer (write
// deadlines).
func (c *compressedWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// Decompress returns body decoded from its Content-Encoding (gzip, snappy
// or zstd; empty or identity: as it is), refusing to decode more than
// limit bytes: a small compressed answer may expand without bound.
//
// sizeHint, when positive, is the decompressed size the answer announces
// (X-Uncompressed-Length), which sizes the output at once.
func Decompress(body []byte, encoding string, limit, sizeHint int64) ([]byte, error) {
	var r io.Reader
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		return body, nil
	case CompressionGzip:
		gr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("decompressing a gzip answer: %w", err)
		}
		defer gr.Close()
		r = gr
	case CompressionSnappy:
		r = snappy.NewReader(bytes.NewReader(body))
	case CompressionZstd:
		zr := zstdReaders.Get().(*zstd.Decoder)
		if err := zr.Reset(bytes.NewReader(body)); err != nil {
			zstdReaders.Put(zr)
			return nil, fmt.Errorf("decompressing a zstd answer: %w", err)
		}
		defer func() {
			_ = zr.Reset(nil)
			zstdReaders.Put(zr)
		}()
		r = zr
	default:
		return nil, fmt.Errorf("an answer in Content-Encoding %q, which is not gzip, snappy or zstd", encoding)
	}
	var out bytes.Buffer
	if sizeHint > 0 {
		out.Grow(int(min(sizeHint, limit)) + bytes.MinRead)
	}
	_, err := out.ReadFrom(io.LimitReader(r, limit+1))
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return nil, &DecompressedTooLargeError{Limit: limit}
	}
	if err != nil {
		return nil, fmt.Errorf("decompressing a %s answer: %w", encoding, err)
	}
	if int64(out.Len()) > limit {
		return nil, &DecompressedTooLargeError{Limit: limit}
	}
	return out.Bytes(), nil
}

// zstdMaxWindow bounds the history a zstd answer may ask its decoder to
// keep (the encoders here and in Cortex use 8 MiB at most by default).
const zstdMaxWindow = 32 << 20

// zstdReaders are reused: a new decoder allocates about 20 MiB
// (BenchmarkQueryAnswerCodec's zstd/*/frontend, 2 cores, 2026-12-07).
var zstdReaders = sync.Pool{New: func() any {
	zr, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow))
	return zr
}}

// DecompressedTooLargeError is an answer whose decompressed size passes
// the bound given to Decompress.
type DecompressedTooLargeError struct{ Limit int64 }

func (e *DecompressedTooLargeError) Error() string {
	return fmt.Sprintf("the answer decompresses to more than %d bytes", e.Limit)
}
