package grpcencoding

import (
	"bytes"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// ZstdName is the name of the zstd compressor.
const ZstdName = "zstd"

type zstdCompressor struct {
	enc     *zstd.Encoder // EncodeAll is safe for concurrent use
	readers sync.Pool     // *zstdReader
}

func newZstd() *zstdCompressor {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		panic(err) // only invalid options fail, and there are none
	}
	c := &zstdCompressor{enc: enc}
	c.readers.New = func() any {
		// One goroutine-free decoder per message being read: concurrency 1
		// decodes on the caller's goroutine. A one-message frame's window
		// is the message's size, bounded by MaxDecodedSize.
		dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(MaxDecodedSize), zstd.WithDecoderMaxMemory(MaxDecodedSize))
		if err != nil {
			panic(err)
		}
		return &zstdReader{dec: dec, pool: &c.readers}
	}
	return c
}

func (*zstdCompressor) Name() string { return ZstdName }

// Compress buffers the message and writes it as one frame on Close.
func (c *zstdCompressor) Compress(w io.Writer) (io.WriteCloser, error) {
	return &zstdWriter{enc: c.enc, w: w}, nil
}

// Decompress decodes as gRPC reads, so that gRPC's limit on the message
// size stops a frame that expands beyond it.
func (c *zstdCompressor) Decompress(r io.Reader) (io.Reader, error) {
	zr := c.readers.Get().(*zstdReader)
	if err := zr.dec.Reset(r); err != nil {
		zr.Close()
		return nil, err
	}
	return zr, nil
}

type zstdWriter struct {
	enc *zstd.Encoder
	w   io.Writer
	buf bytes.Buffer
}

func (z *zstdWriter) Write(p []byte) (int, error) { return z.buf.Write(p) }

func (z *zstdWriter) Close() error {
	_, err := z.w.Write(z.enc.EncodeAll(z.buf.Bytes(), nil))
	return err
}

type zstdReader struct {
	dec  *zstd.Decoder
	pool *sync.Pool
}

func (z *zstdReader) Read(p []byte) (int, error) { return z.dec.Read(p) }

// Close returns the decoder to the pool; gRPC calls it once the message is
// read.
func (z *zstdReader) Close() error {
	_ = z.dec.Reset(nil)
	z.pool.Put(z)
	return nil
}
