package gossip

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// Wire layout (not dskit's): every connection opens with one kind byte.
// A stream (kindStream) then carries memberlist's stream protocol as is.
// A packet connection (kindPackets) carries the sender's advertised address
// (uvarint length, bytes), then packets, each a 4-byte big-endian length
// and the packet; only the dialling side writes.

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func readString(r *bufio.Reader) (string, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return "", err
	}
	if n > 1024 {
		return "", fmt.Errorf("address of %d bytes is too long", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b), nil
}

// readFrame reads one packet of at most limit bytes; limitName names the
// setting in the error.
func readFrame(r *bufio.Reader, limit int64, limitName string) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if int64(n) > limit {
		return nil, fmt.Errorf("packet of %d bytes exceeds the %d byte limit (%s)", n, limit, limitName)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// isTimeout reports a read deadline that passed.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isClosed reports an orderly end of a connection rather than a failure.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}
