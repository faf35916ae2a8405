package grpcencoding

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"google.golang.org/grpc/encoding"
)

func roundTrip(t *testing.T, c encoding.Compressor, in []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := c.Compress(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(in); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := c.Decompress(&buf)
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if cl, ok := r.(io.Closer); ok {
		_ = cl.Close()
	}
	return out
}

func TestRegisteredAndRoundTrip(t *testing.T) {
	for _, name := range Names {
		c := encoding.GetCompressor(name)
		if c == nil {
			t.Fatalf("%s is not registered", name)
		}
		// Twice, so that pooled buffers are reused.
		for _, in := range []string{strings.Repeat("series{job=\"a\"} 1\n", 5000), "", "short"} {
			if out := roundTrip(t, c, []byte(in)); string(out) != in {
				t.Fatalf("%s: %d bytes came back as %d", name, len(in), len(out))
			}
		}
	}
}

// A snappy block whose header claims far more than its body can encode,
// or more than MaxDecodedSize, is refused before its output is allocated.
func TestSnappyBlockRefusesImpossibleLength(t *testing.T) {
	big := snappy.Encode(nil, make([]byte, MaxDecodedSize+1))
	_, err := encoding.GetCompressor(SnappyBlockName).Decompress(bytes.NewReader(big))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("header claims %d bytes from %d compressed (at most %d are decoded)", MaxDecodedSize+1, len(big), MaxDecodedSize)) {
		t.Fatalf("error %v, want a block past MaxDecodedSize refused", err)
	}

	body := snappy.Encode(nil, []byte("abc"))
	_, n := binary.Uvarint(body)
	bomb := binary.AppendUvarint(nil, 1<<31)
	bomb = append(bomb, body[n:]...)
	_, err = encoding.GetCompressor(SnappyBlockName).Decompress(bytes.NewReader(bomb))
	if err == nil || !strings.Contains(err.Error(), "header claims 2147483648 bytes from") {
		t.Fatalf("error %v, want the impossible length refused", err)
	}
}

// zstd decodes as it is read, so that a reader stopping at a limit (as
// gRPC does at the largest message size) never holds the whole output.
func TestZstdStreams(t *testing.T) {
	c := encoding.GetCompressor(ZstdName)
	var buf bytes.Buffer
	w, _ := c.Compress(&buf)
	_, _ = w.Write(make([]byte, 64<<20))
	_ = w.Close()
	r, err := c.Decompress(&buf)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(r, 1<<20+1))
	if err != nil || n != 1<<20+1 {
		t.Fatalf("read %d, %v", n, err)
	}
	_ = r.(io.Closer).Close()
}

func TestValidate(t *testing.T) {
	if err := Validate("ingester.client.grpc-compression", "brotli"); err == nil || err.Error() != `-ingester.client.grpc-compression="brotli": supported values are gzip, snappy, snappy-block, zstd and empty (no compression)` {
		t.Fatalf("error %v", err)
	}
	for _, ok := range append([]string{""}, Names...) {
		if err := Validate("x", ok); err != nil {
			t.Fatal(err)
		}
	}
}

// "gzip" is klauspost's, and writes what the standard library's gzip (a
// peer on gRPC's own compressor, such as Cortex) reads, and reads what it
// writes.
func TestGzipReadsAndWritesStandardGzip(t *testing.T) {
	c := encoding.GetCompressor("gzip")
	if _, ok := c.(*gzipCompressor); !ok {
		t.Fatalf("the registered gzip compressor is %T, want this package's", c)
	}
	body := bytes.Repeat([]byte("http_requests_total{job=\"api\"} "), 4096)
	for range 3 { // through the pools
		var buf bytes.Buffer
		w, err := c.Compress(&buf)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(body)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		zr, err := stdgzip.NewReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(zr); err != nil || !bytes.Equal(got, body) {
			t.Fatalf("the standard library read %d bytes (%v), want the %d written", len(got), err, len(body))
		}

		buf.Reset()
		zw := stdgzip.NewWriter(&buf)
		_, _ = zw.Write(body)
		_ = zw.Close()
		r, err := c.Decompress(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, body) {
			t.Fatalf("read %d bytes (%v) of the standard library's gzip, want %d", len(got), err, len(body))
		}
	}
	if _, err := c.Decompress(bytes.NewReader([]byte("not gzip"))); err == nil {
		t.Fatal("a body that is not gzip decompressed without error")
	}
}
