package alertstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/grafana/dskit/concurrency"
	dskittenant "github.com/grafana/dskit/tenant"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
	"gopkg.in/yaml.v3"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
)

// alertsPrefix is the folder of the configurations in the bucket, as in
// Cortex.
const alertsPrefix = "alerts/"

// fetchConcurrency bounds the objects downloaded at once by
// GetAlertConfigs, as in Cortex.
const fetchConcurrency = 16

// BucketStore keeps configurations in object storage at alerts/<tenant>,
// one YAML object per tenant (alertmanager_config and template_files, the
// configuration API's body). It is read-write.
type BucketStore struct {
	bkt objstore.Bucket

	// scanner lists the tenants (-alertmanager-storage.users-scanner.*),
	// nil for a listing of alerts/ each time; index writes the user index
	// it reads.
	scanner users.Scanner
	index   *users.IndexUpdater
}

// NewBucketStore returns a store in bkt.
func NewBucketStore(bkt objstore.Bucket) *BucketStore { return &BucketStore{bkt: bkt} }

// useUsersScanner lists the tenants as cfg says: from the user index at
// alerts/user-index.json.gz, which UserIndex's updater writes, and/or
// from a cache.
func (s *BucketStore) useUsersScanner(cfg users.Config, logger *slog.Logger, reg prometheus.Registerer) error {
	if cfg.Strategy != users.StrategyUserIndex && cfg.CacheTTL <= 0 {
		return nil
	}
	alerts := objstore.NewPrefixedBucket(s.bkt, strings.TrimSuffix(alertsPrefix, "/"))
	scanner, err := users.NewScannerOver(cfg, users.ListFunc(s.listObjects), alerts, logger, reg)
	if err != nil {
		return err
	}
	s.scanner = scanner
	if cfg.Strategy == users.StrategyUserIndex {
		s.index = users.NewIndexUpdaterOver(alerts, users.ListFunc(s.listObjects), reg)
	}
	return nil
}

// UserIndex returns the updater of the user index, nil unless
// -alertmanager-storage.users-scanner.strategy=user_index.
func (s *BucketStore) UserIndex() *users.IndexUpdater { return s.index }

// ListAllUsers lists the tenants with a configuration, through the users
// scanner when one is configured.
func (s *BucketStore) ListAllUsers(ctx context.Context) ([]string, error) {
	if s.scanner != nil {
		active, _, _, err := s.scanner.ScanUsers(ctx)
		return active, err
	}
	return s.listObjects(ctx)
}

// listObjects lists alerts/, leaving out the user index kept there.
func (s *BucketStore) listObjects(ctx context.Context) ([]string, error) {
	var out []string
	err := s.bkt.Iter(ctx, alertsPrefix, func(key string) error {
		user := strings.TrimPrefix(key, alertsPrefix)
		if user != users.IndexFilename && dskittenant.ValidTenantID(user) == nil && !strings.HasSuffix(user, "/") {
			out = append(out, user)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s in the alertmanager storage bucket: %w", alertsPrefix, err)
	}
	return out, nil
}

// GetAlertConfigs downloads the users' objects, fetchConcurrency at once.
func (s *BucketStore) GetAlertConfigs(ctx context.Context, users []string) (map[string]AlertConfig, error) {
	cfgs := make([]*AlertConfig, len(users))
	err := concurrency.ForEachJob(ctx, len(users), fetchConcurrency, func(ctx context.Context, i int) error {
		c, err := s.GetAlertConfig(ctx, users[i])
		if err == ErrNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		cfgs[i] = &c
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]AlertConfig, len(users))
	for i, c := range cfgs {
		if c != nil {
			out[users[i]] = *c
		}
	}
	return out, nil
}

// GetAlertConfig reads alerts/<user>.
func (s *BucketStore) GetAlertConfig(ctx context.Context, user string) (AlertConfig, error) {
	if err := dskittenant.ValidTenantID(user); err != nil {
		return AlertConfig{}, err
	}
	key := alertsPrefix + user
	r, err := s.bkt.Get(ctx, key)
	if s.bkt.IsObjNotFoundErr(err) {
		return AlertConfig{}, ErrNotFound
	}
	if err != nil {
		return AlertConfig{}, fmt.Errorf("reading %s: %w", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxConfigSize+1))
	if err != nil {
		return AlertConfig{}, fmt.Errorf("reading %s: %w", key, err)
	}
	if len(b) > maxConfigSize {
		return AlertConfig{}, fmt.Errorf("%s: more than the %d bytes allowed", key, maxConfigSize)
	}
	var c AlertConfig
	if err := yaml.Unmarshal(b, &c); err != nil {
		return AlertConfig{}, fmt.Errorf("%s: %w", key, err)
	}
	return c, nil
}

// SetAlertConfig writes alerts/<user>.
func (s *BucketStore) SetAlertConfig(ctx context.Context, user string, c AlertConfig) error {
	if err := dskittenant.ValidTenantID(user); err != nil {
		return err
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	if len(b) > maxConfigSize {
		return fmt.Errorf("tenant %q: configuration of %d bytes, more than the %d allowed", user, len(b), maxConfigSize)
	}
	return s.bkt.Upload(ctx, alertsPrefix+user, bytes.NewReader(b))
}

// DeleteAlertConfig removes alerts/<user>; a missing object is not an error.
func (s *BucketStore) DeleteAlertConfig(ctx context.Context, user string) error {
	if err := dskittenant.ValidTenantID(user); err != nil {
		return err
	}
	err := s.bkt.Delete(ctx, alertsPrefix+user)
	if s.bkt.IsObjNotFoundErr(err) {
		return nil
	}
	return err
}

// Close closes the bucket client.
func (s *BucketStore) Close() error { return s.bkt.Close() }
