package alertmanager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ConfigsPath is the configs service's internal endpoint polled for
// changed tenant configurations.
const ConfigsPath = "/private/api/prom/configs/alertmanager"

// configsResponse is the body of GET ConfigsPath?since=<id>.
type configsResponse struct {
	Configs map[string]configView `json:"configs"`
}

type configView struct {
	ID        int64         `json:"id"`
	Config    *tenantConfig `json:"config"`
	DeletedAt string        `json:"deleted_at,omitempty"`
}

// Poll fetches the configurations changed since the last successful poll
// and applies them. On failure every running tenant keeps its configuration
// and the error is logged with its cause.
func (am *MultitenantAlertmanager) Poll(ctx context.Context) error {
	am.mtx.RLock()
	since := am.since
	am.mtx.RUnlock()
	resp, err := am.fetch(ctx, since)
	if err != nil {
		am.polls.WithLabelValues("failure").Inc()
		am.logger.Error("cannot fetch Alertmanager configurations from the configs service; running tenants keep their last configuration", "url", am.configsURL.String(), "err", err)
		return err
	}
	am.polls.WithLabelValues("success").Inc()
	am.lastSuccess.SetToCurrentTime()

	am.mtx.Lock()
	defer am.mtx.Unlock()
	for id, v := range resp.Configs {
		if v.ID > am.since {
			am.since = v.ID
		}
		if err := validTenant(id); err != nil {
			am.logger.Error("configs service returned an unusable tenant ID; skipped", "tenant", id, "err", err)
			continue
		}
		logger := am.logger.With("tenant", id, "config_id", v.ID)
		if v.DeletedAt != "" || v.Config == nil {
			if t, ok := am.tenants[id]; ok {
				t.stop()
				delete(am.tenants, id)
				logger.Info("tenant's configuration was deactivated: Alertmanager stopped (its silences and notification log stay on disk)")
			}
			continue
		}
		c := *v.Config
		if strings.TrimSpace(c.AlertmanagerConfig) == "" {
			if am.fallback == nil {
				if t, ok := am.tenants[id]; ok {
					t.stop()
					delete(am.tenants, id)
					logger.Info("tenant's configuration is empty and there is no fallback: Alertmanager stopped")
				}
				continue
			}
			c = *am.fallback
		}
		if err := am.applyLocked(id, c); err != nil {
			logger.Error("cannot apply the tenant's Alertmanager configuration; it keeps its previous one", "err", err)
			continue
		}
	}
	am.tenantCount.Set(float64(len(am.tenants)))
	return nil
}

func (am *MultitenantAlertmanager) fetch(ctx context.Context, since int64) (*configsResponse, error) {
	u := *am.configsURL
	u.Path = strings.TrimRight(u.Path, "/") + ConfigsPath
	u.RawQuery = url.Values{"since": {strconv.FormatInt(since, 10)}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := am.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is logged beside it
		}
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 512 {
			msg = msg[:512] + "..."
		}
		return nil, fmt.Errorf("configs service answered %s: %s", resp.Status, msg)
	}
	var out configsResponse
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("decoding the answer: %w", err)
	}
	return &out, nil
}
