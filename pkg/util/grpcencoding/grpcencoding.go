// Package grpcencoding registers Cortex's gRPC message compressors (gzip,
// snappy, snappy-block and zstd) with gRPC, on both sides of every link:
// a client sends with the one its -<prefix>.grpc-compression names, and a
// server answers a call with the compressor the call came with.
//
// Decompression is bounded: gRPC reads at most the receiver's largest
// message size (plus one byte) from a streaming decompressor, and the
// block formats below refuse a header claiming more than MaxDecodedSize,
// or more than their format can produce from the bytes received.
package grpcencoding

import (
	"fmt"
	"slices"
	"strings"

	"github.com/grafana/dskit/grpcencoding/snappy"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/gzip"
)

// MaxDecodedSize bounds what one compressed message may claim to expand
// to, above the 100 MiB default of -server.grpc-max-recv-msg-size-bytes
// and of the clients' -*.grpc-max-recv-msg-size: the block formats below
// allocate their output whole before gRPC can check its size.
const MaxDecodedSize = 128 << 20

// Names are the compressors a -<prefix>.grpc-compression flag accepts,
// besides "" (none).
var Names = []string{gzip.Name, snappy.Name, SnappyBlockName, ZstdName}

func init() {
	// Replaces gRPC's own "gzip", which this package's import of it has
	// registered before this runs.
	encoding.RegisterCompressor(newGzip())
	encoding.RegisterCompressor(newSnappyBlock())
	encoding.RegisterCompressor(newZstd())
}

// Validate checks a -<flag> compression value, naming the flag.
func Validate(flag, name string) error {
	if name == "" || slices.Contains(Names, name) {
		return nil
	}
	return fmt.Errorf("-%s=%q: supported values are %s and empty (no compression)", flag, name, strings.Join(Names, ", "))
}
