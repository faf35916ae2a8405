package client

import (
	"context"
	"strconv"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// SignatureHeader is the gRPC metadata key carrying a push's signature
// with -distributor.sign-write-requests, Cortex's.
const SignatureHeader = "x-req-signature"

// Signer computes the signature of a push as Cortex signs a write request:
// an xxhash of the tenant, then of each metadata's type, family name, help
// and unit, then of each series' label names and values and its exemplars'
// labels, written "v1/<sum>". It detects a request whose series reached
// an ingester under another tenant or altered on the way; TLS already
// guards the link itself.
type Signer struct{ d *xxhash.Digest }

// NewSigner starts the signature of a push of tenant.
func NewSigner(tenant string) Signer {
	s := Signer{d: xxhash.New()}
	_, _ = s.d.WriteString(tenant)
	return s
}

// Metadata adds a metadata; every metadata comes before the series.
func (s Signer) Metadata(md *prompb.MetricMetadata) {
	_, _ = s.d.WriteString(strconv.Itoa(int(md.Type)))
	_, _ = s.d.WriteString(md.MetricFamilyName)
	_, _ = s.d.WriteString(md.Help)
	_, _ = s.d.WriteString(md.Unit)
}

// Series adds a series.
func (s Signer) Series(ts *prompb.TimeSeries) {
	for _, l := range ts.Labels {
		_, _ = s.d.WriteString(l.Name)
		_, _ = s.d.WriteString(l.Value)
	}
	for _, ex := range ts.Exemplars {
		for _, l := range ex.Labels {
			_, _ = s.d.WriteString(l.Name)
			_, _ = s.d.WriteString(l.Value)
		}
	}
}

// Sum is the signature.
func (s Signer) Sum() string { return "v1/" + strconv.FormatUint(s.d.Sum64(), 10) }

// VerifySignature checks the signature a push of tenant carries in ctx's
// metadata against its content: a push without one is refused with
// FailedPrecondition (the distributor does not sign, and the ingester
// expects it to), one that does not match with DataLoss.
func VerifySignature(ctx context.Context, tenant string, req *prompb.WriteRequest) error {
	got := metadata.ValueFromIncomingContext(ctx, SignatureHeader)
	if len(got) != 1 {
		return status.Errorf(codes.FailedPrecondition, "write request of tenant %q has %d signatures, want 1 (-distributor.sign-write-requests is set in the ingester; set it in the distributors too)", tenant, len(got))
	}
	s := NewSigner(tenant)
	for i := range req.Metadata {
		s.Metadata(&req.Metadata[i])
	}
	for i := range req.Timeseries {
		s.Series(&req.Timeseries[i])
	}
	if want := s.Sum(); got[0] != want {
		return status.Errorf(codes.DataLoss, "write request of tenant %q: signature mismatch (-distributor.sign-write-requests): the request is not the one the distributor signed", tenant)
	}
	return nil
}
