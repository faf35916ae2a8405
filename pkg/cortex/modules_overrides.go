package cortex

import (
	"bytes"
	"context"
	"fmt"

	"github.com/grafana/dskit/services"

	"github.com/cortex-tls/cortex/pkg/overrides"
	"github.com/cortex-tls/cortex/pkg/storage/bucket"
)

// initOverridesAPI runs Cortex's user overrides API (-target=overrides) on
// the runtime configuration object: -runtime-config.file in the bucket of
// -runtime-config.backend (a file under -runtime-config.filesystem.dir
// with the filesystem backend).
func (t *Cortex) initOverridesAPI() (services.Service, error) {
	cfg := t.Cfg.RuntimeConfig
	if len(cfg.LoadPath) != 1 || isRuntimeConfigURL(cfg.LoadPath[0]) {
		return nil, fmt.Errorf("-target=overrides serves the user overrides of one runtime configuration object: set -runtime-config.file to one object of -runtime-config.backend (got %q)", cfg.LoadPath.String())
	}
	storage := cfg.StorageConfig
	if storage.Backend == bucket.Filesystem && storage.Filesystem.Directory == "" {
		storage.Filesystem.Directory = "."
	}
	bkt, err := bucket.NewClient(context.Background(), storage, "overrides", t.TLS, t.Logger, t.Registry)
	if err != nil {
		return nil, fmt.Errorf("user overrides API: %w", err)
	}
	loader := newRuntimeConfigLoader(&t.Cfg)
	check := func(data []byte) error {
		_, err := loader.load(bytes.NewReader(data))
		return err
	}
	t.API.RegisterOverrides(overrides.New(bkt, cfg.LoadPath[0], check, t.Logger.With("component", "overrides")))
	return services.NewIdleService(nil, func(error) error { return bkt.Close() }), nil
}
