package storegateway

import (
	"context"
	"fmt"

	"github.com/grafana/dskit/services"
)

// Service runs the bucket store: the first sync happens while the service
// starts, so that a store-gateway reports ready only once it can serve
// every block it found, then a sync every
// -blocks-storage.bucket-store.sync-interval. A failed periodic sync is
// logged and retried at the next one (the blocks it could read are synced);
// a failed first sync fails the start, as in Cortex. Stopping closes the
// blocks and keeps their local copies for the next start.
func (s *BucketStore) Service() services.Service {
	return services.NewTimerService(s.cfg.SyncInterval,
		func(ctx context.Context) error {
			if err := s.SyncBlocks(ctx); err != nil {
				return fmt.Errorf("initial blocks sync: %w", err)
			}
			return nil
		},
		func(ctx context.Context) error {
			if err := s.SyncBlocks(ctx); err != nil && ctx.Err() == nil {
				s.logger.Warn("blocks sync failed; retrying at the next interval", "err", err)
			}
			return nil
		},
		func(error) error { return s.Close() },
	).WithName("store-gateway-bucket-store")
}
