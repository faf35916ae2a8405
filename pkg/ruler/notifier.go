package ruler

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/dns"
	"github.com/prometheus/prometheus/notifier"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// tenantNotifier is one tenant's Prometheus notifier, as in Cortex: its own
// queue (-ruler.notification-queue-capacity) and send loop per
// Alertmanager, fed by Prometheus' service discovery (static URLs, or DNS
// for dns+ and dnssrv+ entries).
type tenantNotifier struct {
	manager  *notifier.Manager
	sd       *discovery.Manager
	sdCancel context.CancelFunc
	wg       sync.WaitGroup
}

// alertmanagerDo sends one request of the notifier: over the ruler's
// -ruler.alertmanager-client link whatever client the notifier built, as
// the tenant (X-Scope-OrgID), with the basic authentication of the
// -ruler.alertmanager-url entry the request is for.
func alertmanagerDo(client *http.Client, user string, targets []alertmanagerTarget) func(context.Context, *http.Client, *http.Request) (*http.Response, error) {
	return func(ctx context.Context, _ *http.Client, req *http.Request) (*http.Response, error) {
		req = req.WithContext(ctx)
		req.Header.Set(tenant.HeaderName, user)
		if t := targetFor(targets, req); t != nil && t.username != "" {
			req.SetBasicAuth(t.username, t.password)
		}
		return client.Do(req)
	}
}

// targetFor is the entry a request goes to: same scheme and path prefix,
// and the same host unless the entry's hosts are looked up in DNS.
func targetFor(targets []alertmanagerTarget, req *http.Request) *alertmanagerTarget {
	for i := range targets {
		t := &targets[i]
		if t.url.Scheme != req.URL.Scheme || !strings.HasPrefix(req.URL.Path, t.url.Path+"/") {
			continue
		}
		if t.lookup == "" && t.url.Host != req.URL.Host {
			continue
		}
		return t
	}
	return nil
}

// notifierConfig is the Prometheus alerting configuration of the entries.
func notifierConfig(cfg *Config, targets []alertmanagerTarget) (*config.Config, map[string]discovery.Configs) {
	ams := make([]*config.AlertmanagerConfig, 0, len(targets))
	for _, t := range targets {
		var sd discovery.Config
		switch t.lookup {
		case "SRV", "A":
			d := &dns.SDConfig{Names: []string{t.url.Hostname()}, RefreshInterval: model.Duration(cfg.AlertmanagerRefreshInterval), Type: t.lookup}
			if t.lookup == "A" {
				d.Port = portOf(t.url.Port())
			}
			sd = d
		default:
			sd = discovery.StaticConfig{{Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(t.url.Host)}}}}
		}
		ams = append(ams, &config.AlertmanagerConfig{
			APIVersion:              config.AlertmanagerAPIVersionV2,
			Scheme:                  t.url.Scheme,
			PathPrefix:              t.url.Path,
			Timeout:                 model.Duration(cfg.NotificationTimeout),
			ServiceDiscoveryConfigs: discovery.Configs{sd},
		})
	}
	c := &config.Config{AlertingConfig: config.AlertingConfig{AlertmanagerConfigs: ams}}
	sd := map[string]discovery.Configs{}
	for k, v := range c.AlertingConfig.AlertmanagerConfigs.ToMap() {
		sd[k] = v.ServiceDiscoveryConfigs
	}
	return c, sd
}

func portOf(s string) int {
	p, _ := strconv.Atoi(s) // checked by Config.Validate
	return p
}

var errNoDiscovery = errors.New("registering the Alertmanager discovery metrics failed")

// newTenantNotifier builds and starts the tenant's notifier; its metrics
// register on reg with Prometheus' names.
func newTenantNotifier(cfg *Config, targets []alertmanagerTarget, client *http.Client, user string, reg prometheus.Registerer, logger *slog.Logger) (*tenantNotifier, error) {
	n := &tenantNotifier{
		manager: notifier.NewManager(&notifier.Options{
			QueueCapacity: cfg.NotificationQueueCapacity,
			Registerer:    reg,
			Do:            alertmanagerDo(client, user, targets),
		}, model.UTF8Validation, logger),
	}
	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(reg)
	if err != nil {
		return nil, err
	}
	var sdCtx context.Context
	sdCtx, n.sdCancel = context.WithCancel(context.Background())
	n.sd = discovery.NewManager(sdCtx, logger, reg, sdMetrics, discovery.Name("notify"), discovery.Updatert(time.Second))
	if n.sd == nil {
		n.sdCancel()
		return nil, errNoDiscovery
	}
	promCfg, sdCfgs := notifierConfig(cfg, targets)
	if err := n.manager.ApplyConfig(promCfg); err != nil {
		n.sdCancel()
		return nil, err
	}
	if err := n.sd.ApplyConfig(sdCfgs); err != nil {
		n.sdCancel()
		return nil, err
	}
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		_ = n.sd.Run()
	}()
	go func() {
		defer n.wg.Done()
		n.manager.Run(n.sd.SyncCh())
	}()
	return n, nil
}

// stop stops discovery and the send loops, and waits for them.
func (n *tenantNotifier) stop() {
	n.sdCancel()
	n.manager.Stop()
	n.wg.Wait()
}
