package client

import (
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// WireEncoding maps a TSDB chunk encoding to its name in prompb.Chunk, for
// the chunks ingesters and store-gateways send; false for an encoding the
// wire format has no name for.
func WireEncoding(e chunkenc.Encoding) (prompb.Chunk_Encoding, bool) {
	switch e {
	case chunkenc.EncXOR:
		return prompb.Chunk_XOR, true
	case chunkenc.EncHistogram:
		return prompb.Chunk_HISTOGRAM, true
	case chunkenc.EncFloatHistogram:
		return prompb.Chunk_FLOAT_HISTOGRAM, true
	case chunkenc.EncXOR2:
		return prompb.Chunk_XOR2, true
	case chunkenc.EncHistogramST:
		return prompb.Chunk_HISTOGRAM_ST, true
	case chunkenc.EncFloatHistogramST:
		return prompb.Chunk_FLOAT_HISTOGRAM_ST, true
	}
	return prompb.Chunk_UNKNOWN, false
}
