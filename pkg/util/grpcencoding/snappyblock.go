package grpcencoding

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/golang/snappy"
)

// SnappyBlockName is the name of the compressor sending each message as one
// snappy block (Cortex's snappy-block), cheaper than the framed snappy
// stream for the small messages most calls carry.
const SnappyBlockName = "snappy-block"

// maxSnappyBlockRatio bounds a block's decoded length by its encoded one:
// snappy's densest element, a 3-byte copy of 64 bytes, expands 21.3 times,
// so a header claiming more is corrupt, and is refused before the output
// buffer is allocated.
const maxSnappyBlockRatio = 22

type snappyBlock struct {
	writers sync.Pool // *snappyBlockWriter
	readers sync.Pool // *snappyBlockReader
}

func newSnappyBlock() *snappyBlock {
	c := &snappyBlock{}
	c.writers.New = func() any { return &snappyBlockWriter{pool: &c.writers} }
	c.readers.New = func() any { return &snappyBlockReader{pool: &c.readers} }
	return c
}

func (*snappyBlock) Name() string { return SnappyBlockName }

// Compress buffers the message and writes it as one block on Close.
func (c *snappyBlock) Compress(w io.Writer) (io.WriteCloser, error) {
	wr := c.writers.Get().(*snappyBlockWriter)
	wr.w = w
	return wr, nil
}

// Decompress decodes the whole block at once: the format has no streaming
// form.
func (c *snappyBlock) Decompress(r io.Reader) (io.Reader, error) {
	rd := c.readers.Get().(*snappyBlockReader)
	if err := rd.decode(r); err != nil {
		rd.Close()
		return nil, err
	}
	return rd, nil
}

type snappyBlockWriter struct {
	pool *sync.Pool
	w    io.Writer
	buf  bytes.Buffer
	dst  []byte
}

func (w *snappyBlockWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }

func (w *snappyBlockWriter) Close() error {
	defer func() {
		w.w = nil
		w.buf.Reset()
		w.pool.Put(w)
	}()
	w.dst = snappy.Encode(w.dst[:cap(w.dst)], w.buf.Bytes())
	_, err := w.w.Write(w.dst)
	return err
}

type snappyBlockReader struct {
	pool *sync.Pool
	src  bytes.Buffer
	dst  []byte
	rd   bytes.Reader
}

func (r *snappyBlockReader) decode(in io.Reader) error {
	if _, err := r.src.ReadFrom(in); err != nil {
		return err
	}
	src := r.src.Bytes()
	n, err := snappy.DecodedLen(src)
	if err != nil {
		return err
	}
	if n > maxSnappyBlockRatio*len(src) || n > MaxDecodedSize {
		return fmt.Errorf("snappy-block: header claims %d bytes from %d compressed (at most %d are decoded)", n, len(src), MaxDecodedSize)
	}
	if cap(r.dst) < n {
		r.dst = make([]byte, n)
	}
	out, err := snappy.Decode(r.dst[:cap(r.dst)], src)
	if err != nil {
		return err
	}
	r.rd.Reset(out)
	return nil
}

func (r *snappyBlockReader) Read(p []byte) (int, error) { return r.rd.Read(p) }

// Close returns the reader's buffers to the pool; gRPC calls it once the
// message is read.
func (r *snappyBlockReader) Close() error {
	r.src.Reset()
	r.rd.Reset(nil)
	r.pool.Put(r)
	return nil
}
