package alertmanager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grafana/dskit/services"
	dskittenant "github.com/grafana/dskit/tenant"
	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
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

// MultitenantAlertmanager runs one Alertmanager per tenant and keeps them in
// step with the configs service.
type MultitenantAlertmanager struct {
	services.Service

	cfg         Config
	logger      *slog.Logger
	client      *http.Client
	configsURL  *url.URL
	externalURL *url.URL
	fallback    *tenantConfig

	mtx     sync.RWMutex
	tenants map[string]*tenant
	since   int64

	polls       *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	tenantCount prometheus.Gauge
}

// New validates cfg and reads the fallback configuration. tlsClient is the
// -alertmanager.configs. TLS link (nil: plaintext or system CAs).
func New(cfg Config, tlsClient *tlsconfig.Client, logger *slog.Logger, reg prometheus.Registerer) (*MultitenantAlertmanager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	am := &MultitenantAlertmanager{
		cfg:     cfg,
		logger:  logger.With("component", "alertmanager"),
		tenants: map[string]*tenant{},
		client:  &http.Client{Transport: tlsClient.HTTPTransport(), Timeout: cfg.Configs.Timeout},
		polls: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_alertmanager_config_polls_total",
			Help: "Polls of the configs service, by result.",
		}, []string{"result"}),
		lastSuccess: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "cortex_alertmanager_config_last_successful_poll_timestamp_seconds",
			Help: "When the configs service last answered a poll.",
		}),
		tenantCount: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "cortex_alertmanager_tenants",
			Help: "Tenants with a running Alertmanager.",
		}),
	}
	if cfg.Configs.URL != "" {
		u, _ := url.Parse(cfg.Configs.URL)
		if u.Scheme == "http" && cfg.Configs.TLS.TLSOn() {
			return nil, fmt.Errorf("-alertmanager.configs.url=%s is plain http:// but -%s.tls-* flags are set: use https://", cfg.Configs.URL, TLSPrefix)
		}
		am.configsURL = u
	}
	base := "http://localhost/alertmanager"
	if cfg.ExternalURL != "" {
		base = strings.TrimRight(cfg.ExternalURL, "/") + "/alertmanager"
	}
	am.externalURL, _ = url.Parse(base)
	if cfg.Configs.Fallback != "" {
		b, err := os.ReadFile(cfg.Configs.Fallback)
		if err != nil {
			return nil, fmt.Errorf("-alertmanager.configs.fallback: %w", err)
		}
		if _, err := amconfig.Load(string(b)); err != nil {
			return nil, fmt.Errorf("-alertmanager.configs.fallback=%s: invalid Alertmanager configuration: %w", cfg.Configs.Fallback, err)
		}
		am.fallback = &tenantConfig{AlertmanagerConfig: string(b)}
	}
	if reg != nil {
		if err := reg.Register(tenantMetrics{am}); err != nil {
			return nil, fmt.Errorf("registering per-tenant Alertmanager metrics: %w", err)
		}
	}
	am.Service = services.NewBasicService(am.starting, am.running, am.stopping)
	return am, nil
}

func (am *MultitenantAlertmanager) starting(ctx context.Context) error {
	// -alertmanager.storage.path is created when the first tenant starts,
	// so that an idle alertmanager leaves no trace.
	if am.configsURL == nil {
		if am.fallback != nil {
			am.logger.Info("no -alertmanager.configs.url: every tenant gets the fallback configuration on first use", "fallback", am.cfg.Configs.Fallback)
		} else {
			am.logger.Warn("no -alertmanager.configs.url and no -alertmanager.configs.fallback: no tenant has an Alertmanager")
		}
		return nil
	}
	// The first poll is best effort: a configs service that is down is
	// logged and retried, it does not stop the process.
	_ = am.Poll(ctx)
	return nil
}

func (am *MultitenantAlertmanager) running(ctx context.Context) error {
	if am.configsURL == nil {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(am.cfg.Configs.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = am.Poll(ctx)
		}
	}
}

func (am *MultitenantAlertmanager) stopping(error) error {
	am.mtx.Lock()
	defer am.mtx.Unlock()
	for id, t := range am.tenants {
		t.stop()
		delete(am.tenants, id)
	}
	am.tenantCount.Set(0)
	am.client.CloseIdleConnections()
	return nil
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

// applyLocked starts or reloads tenant id with c. am.mtx must be held.
func (am *MultitenantAlertmanager) applyLocked(id string, c tenantConfig) error {
	// The operator's fallback may name files; tenants' configurations may not.
	trusted := am.fallback != nil && c.equal(*am.fallback)
	logger := am.logger.With("tenant", id)
	t, ok := am.tenants[id]
	if ok {
		t.mtx.RLock()
		same := t.cfg.equal(c)
		t.mtx.RUnlock()
		if same {
			return nil
		}
		if err := t.apply(c, trusted); err != nil {
			return err
		}
		logger.Info("Alertmanager configuration reloaded")
		return nil
	}
	t, err := newTenant(id, filepath.Join(am.cfg.DataDir, id), am.cfg, am.externalURL, logger)
	if err != nil {
		return err
	}
	if err := t.apply(c, trusted); err != nil {
		t.stop()
		return err
	}
	am.tenants[id] = t
	logger.Info("Alertmanager started")
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

func validTenant(id string) error {
	if id == "" {
		return errors.New("empty tenant ID")
	}
	return dskittenant.ValidTenantID(id)
}

// tenantFor returns the running Alertmanager of id, starting one with the
// fallback configuration if id has none and a fallback is set.
func (am *MultitenantAlertmanager) tenantFor(id string) (*tenant, error) {
	am.mtx.RLock()
	t, ok := am.tenants[id]
	am.mtx.RUnlock()
	if ok {
		return t, nil
	}
	if am.fallback == nil || am.State() != services.Running {
		return nil, nil
	}
	if err := validTenant(id); err != nil {
		return nil, err
	}
	am.mtx.Lock()
	defer am.mtx.Unlock()
	if t, ok := am.tenants[id]; ok {
		return t, nil
	}
	if err := am.applyLocked(id, *am.fallback); err != nil {
		return nil, err
	}
	am.tenantCount.Set(float64(len(am.tenants)))
	return am.tenants[id], nil
}

// Tenants returns the IDs of the tenants with a running Alertmanager.
func (am *MultitenantAlertmanager) Tenants() []string {
	am.mtx.RLock()
	defer am.mtx.RUnlock()
	out := make([]string, 0, len(am.tenants))
	for id := range am.tenants {
		out = append(out, id)
	}
	return out
}
