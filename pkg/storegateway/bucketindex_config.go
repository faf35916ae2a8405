package storegateway

import (
	"errors"
	"flag"
	"time"
)

// BucketIndexConfig is Cortex's -blocks-storage.bucket-store.bucket-index.*
// block: whether store-gateways and queriers find a tenant's blocks through
// the bucket index the compactor writes rather than by listing the bucket.
type BucketIndexConfig struct {
	Enabled bool `yaml:"enabled"`
	// UpdateOnErrorInterval is how soon a failed read of the index is
	// retried by the querier.
	UpdateOnErrorInterval time.Duration `yaml:"update_on_error_interval"`
	// IdleTimeout unloads a tenant's index from a querier that has not
	// queried the tenant for that long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxStalePeriod fails queries over an index older than this: its
	// compactor has stopped updating it, so it may name deleted blocks and
	// miss new ones.
	MaxStalePeriod time.Duration `yaml:"max_stale_period"`
}

// RegisterFlags registers Cortex's bucket index flags.
func (c *BucketIndexConfig) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.Enabled, "blocks-storage.bucket-store.bucket-index.enabled", true, "Find each tenant's blocks through the bucket index (bucket-index.json.gz, written by the compactor) rather than by listing the bucket. The compactor must run when enabled.")
	f.DurationVar(&c.UpdateOnErrorInterval, "blocks-storage.bucket-store.bucket-index.update-on-error-interval", time.Minute, "How frequently a querier retries loading a bucket index that it failed to load.")
	f.DurationVar(&c.IdleTimeout, "blocks-storage.bucket-store.bucket-index.idle-timeout", time.Hour, "How long a querier keeps a tenant's bucket index loaded after the tenant's last query.")
	f.DurationVar(&c.MaxStalePeriod, "blocks-storage.bucket-store.bucket-index.max-stale-period", time.Hour, "Queries fail when the tenant's bucket index was last updated longer ago than this (the compactor that updates it is not running). 0: no check.")
}

// Validate checks the durations of an enabled index.
func (c *BucketIndexConfig) Validate() error {
	if !c.Enabled {
		return nil
	}
	if c.UpdateOnErrorInterval <= 0 {
		return errors.New("-blocks-storage.bucket-store.bucket-index.update-on-error-interval must be positive")
	}
	if c.IdleTimeout <= 0 {
		return errors.New("-blocks-storage.bucket-store.bucket-index.idle-timeout must be positive")
	}
	if c.MaxStalePeriod < 0 {
		return errors.New("-blocks-storage.bucket-store.bucket-index.max-stale-period must not be negative")
	}
	return nil
}
