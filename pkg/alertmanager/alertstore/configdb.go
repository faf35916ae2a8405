package alertstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	configsclient "github.com/cortex-tls/cortex/pkg/configs/client"
)

// ConfigDBStore reads every tenant's configuration from the configs
// service's private API (GET /private/api/prom/configs/alertmanager), as
// Cortex's configdb store does. It is read-only: configurations are written
// through the configs API (POST /api/prom/configs/alertmanager).
//
// ListAllUsers makes one request, asking only for the configurations changed
// since the last answer; the other reads answer from what it has gathered.
// A deactivated tenant is dropped; a tenant whose configuration is empty is
// kept with an empty AlertmanagerConfig and its template files (the
// alertmanager then runs its fallback with them, as Cortex's does).
type ConfigDBStore struct {
	client  *configsclient.Client
	urlFlag string // "-alertmanager.configs.url", for errors

	mtx     sync.Mutex // serialises the polls, so that since and configs move together
	since   int64
	configs map[string]AlertConfig
}

// NewConfigDBStore returns a store reading from the configs service behind
// c; urlFlag names the URL's flag in errors.
func NewConfigDBStore(c *configsclient.Client, urlFlag string) *ConfigDBStore {
	return &ConfigDBStore{client: c, urlFlag: urlFlag, configs: map[string]AlertConfig{}}
}

// ListAllUsers polls the configs service and returns every tenant with an
// active configuration. On error the gathered state is kept.
func (s *ConfigDBStore) ListAllUsers(ctx context.Context) ([]string, error) {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	var resp configsclient.Response[AlertConfig]
	if err := s.client.GetSince(ctx, configsclient.AlertmanagerPath, s.since, &resp); err != nil {
		return nil, fmt.Errorf("fetching Alertmanager configurations from the configs service at %s=%s: %w", s.urlFlag, s.client.URL(), err)
	}
	for id, v := range resp.Configs {
		if v.ID > s.since {
			s.since = v.ID
		}
		if v.DeletedAt != "" || v.Config == nil {
			delete(s.configs, id)
			continue
		}
		s.configs[id] = *v.Config
	}
	return slices.Sorted(maps.Keys(s.configs)), nil
}

// GetAlertConfigs answers from the last poll.
func (s *ConfigDBStore) GetAlertConfigs(_ context.Context, users []string) (map[string]AlertConfig, error) {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	out := make(map[string]AlertConfig, len(users))
	for _, u := range users {
		if c, ok := s.configs[u]; ok {
			out[u] = c
		}
	}
	return out, nil
}

// GetAlertConfig answers from the last poll.
func (s *ConfigDBStore) GetAlertConfig(_ context.Context, user string) (AlertConfig, error) {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	c, ok := s.configs[user]
	if !ok {
		return AlertConfig{}, ErrNotFound
	}
	return c, nil
}

// SetAlertConfig refuses: the configs API writes configurations.
func (s *ConfigDBStore) SetAlertConfig(context.Context, string, AlertConfig) error {
	return readOnly(ConfigDB, "post the configuration to the configs service's /api/prom/configs/alertmanager")
}

// DeleteAlertConfig refuses: the configs API deactivates configurations.
func (s *ConfigDBStore) DeleteAlertConfig(context.Context, string) error {
	return readOnly(ConfigDB, "deactivate the tenant through the configs service's DELETE /api/prom/configs/deactivate")
}

// Close closes the kept-alive connections to the service.
func (s *ConfigDBStore) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
