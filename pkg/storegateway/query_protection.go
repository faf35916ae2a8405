package storegateway

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/util/queryprotection"
)

// WithQueryProtection refuses the server's calls while guard does:
// -store-gateway.query-protection.rejection.threshold.cpu-utilization and
// heap-utilization. A nil guard admits every call.
func WithQueryProtection(guard *queryprotection.Guard) ServerOption {
	return func(s *storeGatewayServer) { s.guard = guard }
}

// admit refuses a call over a utilization threshold with Cortex's
// ResourceExhausted "resource limit reached": the querier asks another
// store-gateway holding the blocks.
func (s *storeGatewayServer) admit() error {
	if err := s.guard.Admit(); err != nil {
		return status.Errorf(codes.ResourceExhausted, "resource limit reached: %v", err)
	}
	return nil
}
