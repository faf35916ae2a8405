// Package alertstore keeps tenants' Alertmanager configurations: in the
// configs service (read-only here, written through its own API), in a local
// directory (read-only) or in an object-storage bucket (read-write, what the
// alertmanager's configuration API writes to).
//
// The backend is -alertmanager-storage.backend, Cortex's
// alertmanager_storage block: configdb (-alertmanager-storage.configs.url and
// .configs.tls-*, whose older spelling -alertmanager.configs.* also works),
// local (-alertmanager-storage.local.path) or one of pkg/storage/bucket's
// object storage backends (filesystem, s3, gcs, azure, swift).
//
// In a bucket the layout is Cortex's, one object per tenant at
// alerts/<tenant>. Cortex stores an alertspb protobuf there; here the object
// holds the YAML the configuration API takes (alertmanager_config and
// template_files), so a bucket written by Cortex is not read by this store,
// nor the reverse.
package alertstore

import (
	"context"
	"errors"
	"maps"
)

// ErrNotFound is returned by GetAlertConfig for a tenant with no
// configuration.
var ErrNotFound = errors.New("alertmanager configuration not found")

// ErrReadOnly is returned by the writes of a store that cannot be written
// through the configuration API (configdb, local).
var ErrReadOnly = errors.New("alertmanager storage is read-only")

// AlertConfig is one tenant's Alertmanager configuration: the configs
// service's JSON and the configuration API's YAML, as in Cortex.
type AlertConfig struct {
	AlertmanagerConfig string            `json:"alertmanager_config" yaml:"alertmanager_config"`
	TemplateFiles      map[string]string `json:"template_files" yaml:"template_files"`
}

// Equal reports whether c and o are the same configuration.
func (c AlertConfig) Equal(o AlertConfig) bool {
	return c.AlertmanagerConfig == o.AlertmanagerConfig && maps.Equal(c.TemplateFiles, o.TemplateFiles)
}

// Store is where the alertmanagers read configurations and the
// configuration API writes them.
type Store interface {
	// ListAllUsers returns every tenant with a configuration.
	ListAllUsers(ctx context.Context) ([]string, error)
	// GetAlertConfigs returns the configurations of the given tenants;
	// tenants with none are left out.
	GetAlertConfigs(ctx context.Context, users []string) (map[string]AlertConfig, error)
	// GetAlertConfig returns one tenant's configuration or ErrNotFound.
	GetAlertConfig(ctx context.Context, user string) (AlertConfig, error)
	// SetAlertConfig creates or replaces the tenant's configuration.
	SetAlertConfig(ctx context.Context, user string, c AlertConfig) error
	// DeleteAlertConfig removes the tenant's configuration; deleting a
	// missing one is not an error.
	DeleteAlertConfig(ctx context.Context, user string) error
}
