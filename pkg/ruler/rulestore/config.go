package rulestore

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"

	configsclient "github.com/cortex-tls/cortex/pkg/configs/client"
	"github.com/cortex-tls/cortex/pkg/storage/bucket"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// The -ruler-storage.backend values served here besides the object storage
// backends of pkg/storage/bucket.
const (
	// ConfigDB reads every tenant's rules from the configs service.
	ConfigDB = "configdb"
	// Local reads <dir>/<tenant>/<namespace file>.
	Local = "local"
)

// flagPrefix is the prefix of every flag of Config, as in Cortex.
const flagPrefix = "ruler-storage."

// Config is Cortex's ruler_storage block: the bucket client's keys inlined
// (backend, s3, gcs, azure, swift, filesystem), configdb and local.
type Config struct {
	bucket.Config `yaml:",inline"`
	ConfigDB      configsclient.Config `yaml:"configdb"`
	Local         LocalConfig          `yaml:"local"`
	// UsersScanner lists the tenants of a bucket backend, from the user
	// index at rules/user-index.json.gz with the user_index strategy.
	UsersScanner users.Config `yaml:"users_scanner"`
}

// LocalConfig is the local backend's block.
type LocalConfig struct {
	Directory string `yaml:"directory"`
}

// RegisterFlags registers the -ruler-storage.* flags. Unlike Cortex, whose
// default backend is s3, the default is filesystem in ./ruler, so that
// -target=all runs with no external service.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.ExtraBackends = []string{ConfigDB, Local}
	c.ConfigDB.RegisterFlagsWithPrefix(flagPrefix, f)
	f.StringVar(&c.Local.Directory, flagPrefix+"local.directory", "", "Directory to read rules from when -ruler-storage.backend=local: <directory>/<tenant>/<namespace file>, each file a Prometheus rule file. Read-only.")
	c.RegisterFlagsWithPrefix(flagPrefix, f)
	c.UsersScanner.RegisterFlagsWithPrefix(strings.TrimSuffix(flagPrefix, "."), f)
}

// Validate checks what can be checked without I/O; errors name the flags.
func (c *Config) Validate() error {
	// Set here too, for a Config built from YAML or by hand.
	c.ExtraBackends = []string{ConfigDB, Local}
	if err := c.UsersScanner.Validate(); err != nil {
		return err
	}
	switch c.Backend {
	case ConfigDB:
		return c.ConfigDB.Validate(true)
	case Local:
		if c.Local.Directory == "" {
			return fmt.Errorf("-%slocal.directory must be set when -%sbackend=local", flagPrefix, flagPrefix)
		}
		return nil
	}
	return c.Config.Validate()
}

// NewStore validates cfg and returns the store of its backend. tls is the
// process's loader (nil for one of its own that never reloads): the
// -ruler-storage.configs.tls-* and -ruler-storage.s3.http.tls-* files are
// loaded now, errors naming the flag, and follow its reloads. Object storage
// operations are counted in Cortex's
// thanos_objstore_bucket_*{component="ruler-storage"}, and requests to the
// configs service in cortex_configs_request_duration_seconds, on reg (nil
// for none).
//
// The configdb and bucket stores hold connections: they implement io.Closer.
func NewStore(ctx context.Context, cfg Config, tls *tlsconfig.Loader, logger *slog.Logger, reg prometheus.Registerer) (Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	base := logger // bucket.NewClient adds the component itself
	logger = logger.With("component", "ruler-storage")
	if tls == nil {
		tls = tlsconfig.NewLoader(logger, nil)
	}
	switch cfg.Backend {
	case ConfigDB:
		c, err := configsclient.NewFromConfig(cfg.ConfigDB, tls)
		if err != nil {
			return nil, err
		}
		if err := c.Instrument(reg); err != nil {
			return nil, err
		}
		logger.Info("rule storage", "backend", ConfigDB, "url", c.URL())
		return NewConfigDBStore(c, logger), nil
	case Local:
		dir := cfg.Local.Directory
		fi, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("-%slocal.directory=%q: %w", flagPrefix, dir, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("-%slocal.directory=%q: not a directory", flagPrefix, dir)
		}
		logger.Info("rule storage", "backend", Local, "dir", dir)
		return NewLocalStore(dir, logger), nil
	}
	b, err := bucket.NewClient(ctx, cfg.Config, "ruler-storage", tls, base, reg)
	if err != nil {
		return nil, err
	}
	s := NewBucketStore(b, logger)
	if err := s.useUsersScanner(cfg.UsersScanner, prometheus.WrapRegistererWith(prometheus.Labels{"component": "ruler"}, reg)); err != nil {
		return nil, err
	}
	return s, nil
}

// readOnly is the error of a write to a read-only backend.
func readOnly(backend, how string) error {
	return fmt.Errorf("-%sbackend=%s is read-only; %s: %w", flagPrefix, backend, how, ErrReadOnly)
}
