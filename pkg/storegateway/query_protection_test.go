package storegateway

import (
	"context"
	"math"
	"runtime/debug"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/queryprotection"
)

// Over a -store-gateway.query-protection.rejection.threshold.* threshold
// the store-gateway refuses calls with Cortex's ResourceExhausted
// "resource limit reached", before reading any block.
func TestQueryProtectionRefusesCalls(t *testing.T) {
	old := debug.SetMemoryLimit(1 << 40)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	cfg := GatewayConfig{ShardingStrategy: ShardingStrategyDefault}
	// Any heap at all is over a millionth of a millionth of 1 TiB.
	cfg.QueryProtection.Rejection.Threshold.HeapUtilization = 1e-12
	guard, err := queryprotection.NewGuardWithMonitor(cfg.QueryProtection, "store-gateway.", "store-gateway", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStoreGatewayServer(nil, nil, WithQueryProtection(guard))
	ctx := tenant.Inject(context.Background(), "team-a")
	for name, call := range map[string]func() error{
		"LabelNames": func() error { _, err := s.LabelNames(ctx, &client.LabelNamesRequest{}); return err },
		"LabelValues": func() error {
			_, err := s.LabelValues(ctx, &client.LabelValuesRequest{Name: "job"})
			return err
		},
	} {
		err := call()
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "resource limit reached: heap utilization limit reached") ||
			!strings.Contains(err.Error(), "-store-gateway.query-protection.rejection.threshold.heap-utilization") {
			t.Errorf("%s: %v, want ResourceExhausted naming the flag", name, err)
		}
	}

	cfg.QueryProtection.Rejection.Threshold.HeapUtilization = math.NaN()
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-store-gateway.query-protection.rejection.threshold.heap-utilization must be between 0 and 1") {
		t.Errorf("NaN threshold: %v", err)
	}
}
