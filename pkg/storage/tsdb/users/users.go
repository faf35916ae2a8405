// Package users lists the tenants of the blocks bucket, as Cortex's
// pkg/storage/tsdb/users does: by listing the bucket (strategy list), or
// from the user index the compactor writes at the bucket's top
// (user-index.json.gz, strategy user_index), falling back to a listing
// when the index is missing, unreadable or stale; optionally cached.
package users

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/thanos-io/objstore"
)

// The values of -blocks-storage.users-scanner.strategy.
const (
	StrategyList      = "list"
	StrategyUserIndex = "user_index"
)

// Config is Cortex's blocks_storage.users_scanner block.
type Config struct {
	Strategy       string        `yaml:"strategy"`
	MaxStalePeriod time.Duration `yaml:"max_stale_period"`
	CacheTTL       time.Duration `yaml:"cache_ttl"`
	// UpdateInterval is how often the user index is written.
	UpdateInterval time.Duration `yaml:"update_interval"`

	// prefix names the flags in errors ("blocks-storage").
	prefix string
}

// RegisterFlagsWithPrefix registers -<prefix>.users-scanner.* (prefix
// "blocks-storage").
func (c *Config) RegisterFlagsWithPrefix(prefix string, f *flag.FlagSet) {
	c.prefix = prefix
	f.StringVar(&c.Strategy, prefix+".users-scanner.strategy", StrategyList, fmt.Sprintf("Strategy to use to scan users. Supported values are: %s, %s.", StrategyList, StrategyUserIndex))
	f.DurationVar(&c.MaxStalePeriod, prefix+".users-scanner.user-index.max-stale-period", time.Hour, "Maximum period of time to consider the user index as stale. Fall back to the base scanner if stale. Only valid when strategy is user_index.")
	f.DurationVar(&c.UpdateInterval, prefix+".users-scanner.user-index.update-interval", 15*time.Minute, "How frequently user index file is updated. It only takes effect when user scan strategy is user_index.")
	f.DurationVar(&c.CacheTTL, prefix+".users-scanner.cache-ttl", 0, "TTL of the cached users. 0 disables caching and relies on caching at bucket client level.")
}

// Validate checks the settings, naming the flag at fault.
func (c *Config) Validate() error {
	p := c.prefix
	if p == "" {
		p = "blocks-storage"
	}
	switch c.Strategy {
	case StrategyList, StrategyUserIndex, "": // "": a Config built in code, the list strategy
	default:
		return fmt.Errorf("-%s.users-scanner.strategy=%q: unknown strategy; valid values: %s, %s", p, c.Strategy, StrategyList, StrategyUserIndex)
	}
	if c.Strategy == StrategyUserIndex && c.MaxStalePeriod <= 0 {
		return fmt.Errorf("-%s.users-scanner.user-index.max-stale-period must be positive with -%s.users-scanner.strategy=%s, got %s", p, p, StrategyUserIndex, c.MaxStalePeriod)
	}
	if c.UpdateInterval < 0 {
		return fmt.Errorf("-%s.users-scanner.user-index.update-interval must not be negative (0 writes the index only at start), got %s", p, c.UpdateInterval)
	}
	if c.CacheTTL < 0 {
		return fmt.Errorf("-%s.users-scanner.cache-ttl must not be negative, got %s", p, c.CacheTTL)
	}
	return nil
}

// IndexFilename is the user index at the bucket's top, gzipped JSON.
const IndexFilename = "user-index.json.gz"

const indexVersion = 1

// maxIndexSize bounds what reading the index decompresses: 64 MiB holds
// about a million tenant IDs.
const maxIndexSize = 64 << 20

var (
	// ErrIndexNotFound is a bucket without a user index.
	ErrIndexNotFound = errors.New("user index not found")
	// ErrIndexCorrupted is a user index that does not decode.
	ErrIndexCorrupted = errors.New("user index corrupted")
)

// Index is Cortex's user index: the bucket's tenants when it was written.
type Index struct {
	Version   int   `json:"version"`
	UpdatedAt int64 `json:"updated_at"`

	// Active tenants have blocks; Deleting ones are marked for deletion
	// and still have a folder; Deleted ones have only a global marker
	// folder left.
	Active   []string `json:"active"`
	Deleting []string `json:"deleting"`
	Deleted  []string `json:"deleted"`
}

// GetUpdatedAt is when the index was written.
func (idx *Index) GetUpdatedAt() time.Time { return time.Unix(idx.UpdatedAt, 0) }

// WriteIndex uploads idx to the top of bkt.
func WriteIndex(ctx context.Context, bkt objstore.Bucket, idx *Index) error {
	content, err := json.Marshal(idx)
	if err != nil {
		return fmt.Errorf("encoding the user index: %w", err)
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.Name = strings.TrimSuffix(IndexFilename, ".gz")
	if _, err := gz.Write(content); err != nil {
		return fmt.Errorf("compressing the user index: %w", err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("compressing the user index: %w", err)
	}
	if err := bkt.Upload(ctx, IndexFilename, &buf); err != nil {
		return fmt.Errorf("writing %s: %w", IndexFilename, err)
	}
	return nil
}

// ReadIndex reads the user index at the top of bkt: ErrIndexNotFound
// without one, ErrIndexCorrupted when it does not decode.
func ReadIndex(ctx context.Context, bkt objstore.BucketReader) (*Index, error) {
	r, err := bkt.Get(ctx, IndexFilename)
	if err != nil {
		if bkt.IsObjNotFoundErr(err) {
			return nil, ErrIndexNotFound
		}
		return nil, fmt.Errorf("reading %s: %w", IndexFilename, err)
	}
	defer r.Close()
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrIndexCorrupted, IndexFilename, err)
	}
	defer gz.Close()
	var idx Index
	if err := json.NewDecoder(io.LimitReader(gz, maxIndexSize)).Decode(&idx); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrIndexCorrupted, IndexFilename, err)
	}
	for _, list := range [][]string{idx.Active, idx.Deleting, idx.Deleted} {
		if slices.ContainsFunc(list, func(t string) bool { return !validTenant(t) }) {
			return nil, fmt.Errorf("%w: %s names a tenant that cannot be a bucket folder", ErrIndexCorrupted, IndexFilename)
		}
	}
	return &idx, nil
}
