package alertstore

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	configsclient "github.com/cortex-tls/cortex/pkg/configs/client"
	"github.com/cortex-tls/cortex/pkg/storage/bucket"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// The -alertmanager-storage.backend values served here besides the object
// storage backends of pkg/storage/bucket.
const (
	// ConfigDB reads every tenant's configuration from the configs service.
	ConfigDB = "configdb"
	// Local reads <path>/<tenant>.yaml.
	Local = "local"
)

// FlagPrefix is the prefix of every flag of Config, as in Cortex.
const FlagPrefix = "alertmanager-storage."

// LegacyPrefix is the older prefix of the configs service link's url,
// client-timeout and tls-* flags, the one the TLS guide uses.
const LegacyPrefix = "alertmanager."

// Config is Cortex's alertmanager_storage block: the bucket client's keys
// inlined (backend, s3, gcs, azure, swift, filesystem), configdb and local.
type Config struct {
	bucket.Config `yaml:",inline"`
	ConfigDB      configsclient.Config `yaml:"configdb"`
	Local         LocalConfig          `yaml:"local"`
	// UsersScanner lists the tenants of a bucket backend, from the user
	// index at alerts/user-index.json.gz with the user_index strategy.
	UsersScanner users.Config `yaml:"users_scanner"`

	// configsPrefix is the prefix of the configs link's flags in effect
	// after Resolve: FlagPrefix, or LegacyPrefix when only the older
	// spelling was given. Errors and logs name the flags the operator set.
	configsPrefix string
}

// LocalConfig is the local backend's block.
type LocalConfig struct {
	Path string `yaml:"path"`
}

// Legacy is the configs service link as the older flags
// -alertmanager.configs.url, .client-timeout and .tls-* set it.
type Legacy struct {
	URL     string
	Timeout time.Duration
	TLS     tlsconfig.ClientConfig
}

// RegisterFlags registers the -alertmanager-storage.* flags. The backend's
// default is empty: Resolve picks configdb when a configs URL is set and
// filesystem in ./alertmanager otherwise, so -target=all runs with no
// external service.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.ExtraBackends = []string{ConfigDB, Local}
	c.ConfigDB.RegisterFlagsWithPrefix(FlagPrefix, f)
	f.StringVar(&c.Local.Path, FlagPrefix+"local.path", "", "Directory to read Alertmanager configurations from when -alertmanager-storage.backend=local: <path>/<tenant>.yaml, each an Alertmanager configuration file. Read-only.")
	c.RegisterFlagsWithPrefixAndDefaults(FlagPrefix, f, "", bucket.DefaultDir(FlagPrefix))
	c.UsersScanner.RegisterFlagsWithPrefix(strings.TrimSuffix(FlagPrefix, "."), f)
}

// configsDefaults are the flag defaults of the configs link.
func configsDefaults() configsclient.Config {
	var d configsclient.Config
	d.RegisterFlagsWithPrefix("defaults.", flag.NewFlagSet("defaults", flag.ContinueOnError))
	return d
}

// Resolve merges the older spelling of the configs link's flags into
// c.ConfigDB and picks the default backend. Either spelling may be used, and
// both when they agree; a setting given different values under the two
// names is an error naming both flags.
func (c *Config) Resolve(legacy Legacy) error {
	c.ExtraBackends = []string{ConfigDB, Local}
	d := configsDefaults()
	newSet, oldSet := false, false
	// A value is given when it is neither its flag's default nor the zero
	// value (a Config built in code rather than from flags).
	given := func(v, def reflect.Value) bool { return !v.IsZero() && !v.Equal(def) }
	pick := func(name string, cur, old, def reflect.Value) error {
		curSet, oldSet1 := given(cur, def), given(old, def)
		switch {
		case curSet && oldSet1 && !cur.Equal(old):
			return fmt.Errorf("-%sconfigs.%s=%v and -%sconfigs.%s=%v are two names of one setting, given different values: set only one", LegacyPrefix, name, old, FlagPrefix, name, cur)
		case oldSet1 && !curSet:
			cur.Set(old)
			oldSet = true
		case cur.IsZero() && !old.IsZero():
			cur.Set(old) // the older flag's default
		}
		if curSet {
			newSet = true
		}
		return nil
	}
	if err := pick("url", reflect.ValueOf(&c.ConfigDB.URL).Elem(), reflect.ValueOf(legacy.URL), reflect.ValueOf(d.URL)); err != nil {
		return err
	}
	if err := pick("client-timeout", reflect.ValueOf(&c.ConfigDB.Timeout).Elem(), reflect.ValueOf(legacy.Timeout), reflect.ValueOf(d.Timeout)); err != nil {
		return err
	}
	cur, old, def := reflect.ValueOf(&c.ConfigDB.TLS).Elem(), reflect.ValueOf(legacy.TLS), reflect.ValueOf(d.TLS)
	for i := range cur.NumField() {
		name := strings.ReplaceAll(strings.Split(cur.Type().Field(i).Tag.Get("yaml"), ",")[0], "_", "-")
		if err := pick(name, cur.Field(i), old.Field(i), def.Field(i)); err != nil {
			return err
		}
	}
	c.configsPrefix = FlagPrefix
	if oldSet && !newSet {
		c.configsPrefix = LegacyPrefix
	}
	if c.Backend == "" {
		c.Backend = bucket.Filesystem
		if c.ConfigDB.URL != "" {
			c.Backend = ConfigDB
		}
	}
	return nil
}

// ConfigsTLSPrefix is the prefix of the configs link's TLS flags in effect,
// without dashes ("alertmanager.configs" or "alertmanager-storage.configs").
func (c *Config) ConfigsTLSPrefix() string {
	if c.configsPrefix == "" {
		return FlagPrefix + "configs"
	}
	return c.configsPrefix + "configs"
}

// Validate checks what can be checked without I/O; errors name the flags.
// Call Resolve first.
func (c *Config) Validate() error {
	c.ExtraBackends = []string{ConfigDB, Local}
	if err := c.UsersScanner.Validate(); err != nil {
		return err
	}
	switch c.Backend {
	case "":
		return fmt.Errorf("-%sbackend is empty", FlagPrefix)
	case ConfigDB:
		if c.ConfigDB.URL == "" {
			return fmt.Errorf("-%sconfigs.url (or -%sconfigs.url) must be set when -%sbackend=configdb", FlagPrefix, LegacyPrefix, FlagPrefix)
		}
		if c.ConfigDB.Timeout <= 0 {
			return fmt.Errorf("-%sconfigs.client-timeout=%s must be positive", c.prefix(), c.ConfigDB.Timeout)
		}
		_, err := configsclient.ParseURL("-"+c.prefix()+"configs.url", c.ConfigDB.URL, c.ConfigsTLSPrefix(), c.ConfigDB.TLS)
		return err
	case Local:
		if c.Local.Path == "" {
			return fmt.Errorf("-%slocal.path must be set when -%sbackend=local", FlagPrefix, FlagPrefix)
		}
		return nil
	}
	return c.Config.Validate()
}

func (c *Config) prefix() string {
	if c.configsPrefix == "" {
		return FlagPrefix
	}
	return c.configsPrefix
}

// NewStore validates cfg (after Resolve) and returns the store of its
// backend. tls is the process's loader (nil for one of its own that never
// reloads): the configs link's and the S3 link's certificate files are
// loaded now, errors naming the flag, and follow its reloads. Object storage
// operations are counted in thanos_objstore_bucket_*{component="alertmanager-storage"},
// requests to the configs service in cortex_configs_request_duration_seconds,
// on reg (nil for none).
func NewStore(ctx context.Context, cfg Config, tls *tlsconfig.Loader, logger *slog.Logger, reg prometheus.Registerer) (Store, error) {
	if cfg.Backend == "" {
		if err := cfg.Resolve(Legacy{}); err != nil {
			return nil, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	base := logger
	logger = logger.With("component", "alertmanager-storage")
	if tls == nil {
		tls = tlsconfig.NewLoader(logger, nil)
	}
	switch cfg.Backend {
	case ConfigDB:
		u, err := configsclient.ParseURL("-"+cfg.prefix()+"configs.url", cfg.ConfigDB.URL, cfg.ConfigsTLSPrefix(), cfg.ConfigDB.TLS)
		if err != nil {
			return nil, err
		}
		tc, err := tlsconfig.NewClient(cfg.ConfigsTLSPrefix(), cfg.ConfigDB.TLS, tls)
		if err != nil {
			return nil, err
		}
		c := configsclient.New(u, cfg.ConfigDB.Timeout, tc)
		if err := c.Instrument(reg); err != nil {
			return nil, err
		}
		logger.Info("alertmanager storage", "backend", ConfigDB, "url", c.URL())
		return NewConfigDBStore(c, "-"+cfg.prefix()+"configs.url"), nil
	case Local:
		fi, err := os.Stat(cfg.Local.Path)
		if err != nil {
			return nil, fmt.Errorf("-%slocal.path=%q: %w", FlagPrefix, cfg.Local.Path, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("-%slocal.path=%q: not a directory", FlagPrefix, cfg.Local.Path)
		}
		logger.Info("alertmanager storage", "backend", Local, "path", cfg.Local.Path)
		return NewLocalStore(cfg.Local.Path), nil
	}
	open := func() (Store, error) {
		b, err := bucket.NewClient(ctx, cfg.Config, "alertmanager-storage", tls, base, reg)
		if err != nil {
			return nil, err
		}
		s := NewBucketStore(b)
		if err := s.useUsersScanner(cfg.UsersScanner, logger, prometheus.WrapRegistererWith(prometheus.Labels{"component": "alertmanager"}, reg)); err != nil {
			return nil, err
		}
		return s, nil
	}
	logger.Info("alertmanager storage", "backend", cfg.Backend)
	if cfg.Backend == bucket.Filesystem {
		if _, err := os.Stat(cfg.Filesystem.Directory); errors.Is(err, fs.ErrNotExist) {
			return &lazyFilesystemStore{dir: cfg.Filesystem.Directory, open: open}, nil
		}
	}
	return open()
}

// readOnly is the error of a write to a read-only backend.
func readOnly(backend, how string) error {
	return fmt.Errorf("-%sbackend=%s is read-only; %s: %w", FlagPrefix, backend, how, ErrReadOnly)
}
