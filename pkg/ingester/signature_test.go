package ingester

import (
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
)

// With -distributor.sign-write-requests the ingester stores a push only
// when its signature matches its content.
func TestPushSignatureVerified(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), newKV(t))
	cfg.VerifySignatures = true
	h := startHarness(t, cfg, newTestLimits(t, nil))
	req := &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{floats(series("up", "job", "api"), float64(base), 1)},
		Metadata:   []prompb.MetricMetadata{{MetricFamilyName: "up", Type: prompb.MetricMetadata_GAUGE, Help: "Up."}},
	}
	signer := client.NewSigner("t")
	signer.Metadata(&req.Metadata[0])
	signer.Series(&req.Timeseries[0])
	signed := func(sig string) error {
		_, err := h.conn.Push(metadata.AppendToOutgoingContext(ctxFor("t"), client.SignatureHeader, sig), req)
		return err
	}

	if _, err := h.conn.Push(ctxFor("t"), req); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("unsigned: %v, want FailedPrecondition", err)
	}
	if err := signed("v1/1"); status.Code(err) != codes.DataLoss {
		t.Errorf("wrong signature: %v, want DataLoss", err)
	}
	// Signed for another tenant: the series would reach the wrong one.
	other := client.NewSigner("u")
	other.Metadata(&req.Metadata[0])
	other.Series(&req.Timeseries[0])
	if err := signed(other.Sum()); status.Code(err) != codes.DataLoss {
		t.Errorf("another tenant's signature: %v, want DataLoss", err)
	}
	if got := h.query("t", base, base, eq("__name__", "up")); len(got) != 0 {
		t.Fatalf("refused pushes stored %v", got)
	}
	if err := signed(signer.Sum()); err != nil {
		t.Fatalf("signed push: %v", err)
	}
	if got := h.query("t", base, base, eq("__name__", "up")); len(got) != 1 {
		t.Errorf("stored %v, want the signed series", got)
	}
}
