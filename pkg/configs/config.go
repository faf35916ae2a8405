package configs

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/cortex-tls/cortex/pkg/configs/db"
)

// DefaultDatabaseURI is an SQLite file under the working directory.
const DefaultDatabaseURI = "file:./configs/configs.db"

// Config is the configs block.
type Config struct {
	Database DatabaseConfig `yaml:"database"`
	API      APIConfig      `yaml:"api"`
}

// APIConfig is the configs.api block: what the API accepts.
type APIConfig struct {
	Notifications NotificationsConfig `yaml:"notifications"`
}

// NotificationsConfig is the configs.api.notifications block: the
// Alertmanager receiver kinds the API refuses in a tenant's configuration,
// for operators who do not let their alertmanagers send mail or call
// arbitrary URLs.
type NotificationsConfig struct {
	DisableEmail   bool `yaml:"disable_email"`
	DisableWebhook bool `yaml:"disable_webhook"`
}

// DatabaseConfig is the configs.database block.
type DatabaseConfig struct {
	URI          DatabaseURI `yaml:"uri"`
	PasswordFile string      `yaml:"password_file"`
}

// DatabaseURI is a database URI that shows its password masked in YAML
// (/config), as flagext.Secret does.
type DatabaseURI string

// String implements flag.Value.
func (u *DatabaseURI) String() string {
	if u == nil {
		return ""
	}
	return db.Redact(string(*u))
}

// Set implements flag.Value.
func (u *DatabaseURI) Set(s string) error { *u = DatabaseURI(s); return nil }

// MarshalYAML masks the password.
func (u DatabaseURI) MarshalYAML() (any, error) { return db.Redact(string(u)), nil }

// RegisterFlags registers the -configs.* flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.Database.URI = DefaultDatabaseURI
	f.Var(&c.Database.URI, "configs.database.uri", "Database of the configs service: file:<path> for an embedded SQLite file (its directory is created, mode 0700), or postgres://user@host:port/database?sslmode=verify-full for PostgreSQL. The schema is migrated at startup.")
	f.StringVar(&c.Database.PasswordFile, "configs.database.password-file", "", "File holding the PostgreSQL password, used instead of a password in -configs.database.uri.")
	f.BoolVar(&c.API.Notifications.DisableEmail, "configs.notifications.disable-email", false, "Refuse Alertmanager configurations with an email receiver (email_configs).")
	f.BoolVar(&c.API.Notifications.DisableWebhook, "configs.notifications.disable-webhook", false, "Refuse Alertmanager configurations with a webhook receiver (webhook_configs).")
}

// uri returns the database URI with the password file applied.
func (c *DatabaseConfig) uri() (string, error) {
	uri := string(c.URI)
	if c.PasswordFile == "" {
		return uri, nil
	}
	if !strings.HasPrefix(uri, "postgres://") && !strings.HasPrefix(uri, "postgresql://") {
		return "", fmt.Errorf("-configs.database.password-file is only for PostgreSQL, but -configs.database.uri=%s", db.Redact(uri))
	}
	b, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("reading -configs.database.password-file: %w", err)
	}
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("-configs.database.uri: %w", err)
	}
	if u.User == nil {
		return "", fmt.Errorf("-configs.database.uri=%s names no user for the password of -configs.database.password-file", db.Redact(uri))
	}
	u.User = url.UserPassword(u.User.Username(), strings.TrimRight(string(b), "\r\n"))
	return u.String(), nil
}

// OpenDB opens (and migrates) the configured database.
func OpenDB(cfg Config, logger *slog.Logger) (*db.DB, error) {
	uri, err := cfg.Database.uri()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := db.Open(ctx, uri, logger)
	if err != nil {
		return nil, fmt.Errorf("configs database -configs.database.uri=%s: %w", db.Redact(uri), err)
	}
	return d, nil
}
