package tlsconfig

import (
	"bytes"
	"io"
	"net"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// plaintextGRPCMessage is the status message a plaintext gRPC client gets
// from a TLS port. Printable ASCII without '%', so it needs no grpc-message
// percent-encoding.
const plaintextGRPCMessage = "this port requires TLS: the client must use TLS (for Cortex, set its -<prefix>.tls-* flags)"

// maxRecorded bounds the bytes kept from the start of a connection.
const maxRecorded = 16 << 10

// recordingConn keeps the bytes crypto/tls reads during the handshake, so
// that a plaintext HTTP/2 client can still be answered after crypto/tls has
// consumed the start of its stream. Recording stops when the handshake ends.
type recordingConn struct {
	net.Conn
	recording bool
	truncated bool
	rec       []byte
}

func (c *recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.recording && n > 0 {
		if len(c.rec)+n > maxRecorded {
			c.truncated, c.recording, c.rec = true, false, nil
		} else {
			c.rec = append(c.rec, b[:n]...)
		}
	}
	return n, err
}

// stop ends the recording; it runs before the connection is handed on.
func (c *recordingConn) stop() {
	c.recording, c.rec = false, nil
}

// refusePlaintextGRPC answers a plaintext HTTP/2 (gRPC) client with a gRPC
// status instead of a bare close. A GOAWAY alone is not enough: a gRPC client
// that reads it before it has put its call on the connection does not fail
// the call but reconnects, again and again, until the call's deadline. So the
// server acts as an HTTP/2 server just long enough to answer the first call
// with UNAVAILABLE and plaintextGRPCMessage, then sends GOAWAY. seen is what
// crypto/tls already read from the connection.
func refusePlaintextGRPC(raw net.Conn, seen []byte, timeout time.Duration) {
	_ = raw.SetDeadline(time.Now().Add(timeout))
	r := io.MultiReader(bytes.NewReader(seen), raw)
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(r, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	fr := http2.NewFramer(raw, r)
	if fr.WriteSettings() != nil {
		return
	}
	for {
		frame, err := fr.ReadFrame()
		if err != nil {
			// No call came (or the client gave up): say why, then close.
			_ = fr.WriteGoAway(0, http2.ErrCodeNo, []byte(plaintextGRPCMessage))
			return
		}
		switch f := frame.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() && fr.WriteSettingsAck() != nil {
				return
			}
		case *http2.HeadersFrame:
			var block bytes.Buffer
			enc := hpack.NewEncoder(&block)
			for _, hf := range []hpack.HeaderField{
				{Name: ":status", Value: "200"},
				{Name: "content-type", Value: "application/grpc"},
				{Name: "grpc-status", Value: "14"}, // UNAVAILABLE
				{Name: "grpc-message", Value: plaintextGRPCMessage},
			} {
				_ = enc.WriteField(hf)
			}
			if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}) != nil {
				return
			}
			// Later calls on this connection are retried on a new one,
			// which gets the same answer.
			_ = fr.WriteGoAway(f.StreamID, http2.ErrCodeNo, []byte(plaintextGRPCMessage))
			return
		}
	}
}
