package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"gopkg.in/yaml.v3"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// AllTenants in a client's list lets it act for every tenant: the
// components that call others for any tenant (distributors, queriers,
// rulers, query-frontends).
const AllTenants = "*"

// Config is the -auth.* settings of identities and tenants.
type Config struct {
	ClientTenantsFile         string        `yaml:"client_tenants_file"`
	ClientTenantsReloadPeriod time.Duration `yaml:"client_tenants_reload_period"`
	TenantFromClientCert      bool          `yaml:"tenant_from_client_cert"`
}

// RegisterFlags registers the -auth.* flags of this package.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.ClientTenantsFile, "auth.client-tenants-file", "", "YAML file listing the tenants each client identity may act for: `clients: {<identity>: [<tenant>, ...]}`, \"*\" for every tenant. The identity is the client certificate's URI SAN, or its Subject Common Name without one. A request naming a tenant its client may not use is refused (HTTP 403, gRPC PermissionDenied). Reloaded every -auth.client-tenants-reload-period; a file that does not load keeps the last good list. Empty: any verified client certificate may act for any tenant.")
	f.DurationVar(&c.ClientTenantsReloadPeriod, "auth.client-tenants-reload-period", 10*time.Second, "How often -auth.client-tenants-file is checked for changes.")
	f.BoolVar(&c.TenantFromClientCert, "auth.tenant-from-client-cert", false, "A request with no X-Scope-OrgID header belongs to the tenant named by its client certificate's identity (URI SAN, else Common Name), which must be a valid tenant ID. Lets a client that cannot set headers write into its own tenant.")
}

// Validate checks the flags.
func (c *Config) Validate() error {
	if c.ClientTenantsFile != "" && c.ClientTenantsReloadPeriod <= 0 {
		return errors.New("-auth.client-tenants-reload-period must be positive")
	}
	return nil
}

// clientTenantsFile is the file's YAML.
type clientTenantsFile struct {
	Clients map[string][]string `yaml:"clients"`
}

// allowList maps an identity to its tenants; all marks identities with "*".
type allowList struct {
	tenants map[string]map[string]bool
	all     map[string]bool
}

// ParseClientTenants reads the allow-list's YAML, naming file, identity
// and entry at fault.
func ParseClientTenants(file string, data []byte) (*allowList, error) {
	var f clientTenantsFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("-auth.client-tenants-file=%s: %w", file, err)
	}
	l := &allowList{tenants: map[string]map[string]bool{}, all: map[string]bool{}}
	for id, tenants := range f.Clients {
		if id == "" {
			return nil, fmt.Errorf("-auth.client-tenants-file=%s: an empty client identity", file)
		}
		l.tenants[id] = map[string]bool{}
		for _, t := range tenants {
			if t == AllTenants {
				l.all[id] = true
				continue
			}
			if err := tenant.Valid(t); err != nil {
				return nil, fmt.Errorf("-auth.client-tenants-file=%s: client %q: %w", file, id, err)
			}
			l.tenants[id][t] = true
		}
	}
	return l, nil
}

// ForbiddenError is a client acting for a tenant its identity may not use.
type ForbiddenError struct {
	Identity string
	Tenant   string
}

func (e *ForbiddenError) Error() string {
	if e.Identity == "" {
		return fmt.Sprintf("tenant %q: the request has no client certificate identity, and -auth.client-tenants-file admits only listed identities", e.Tenant)
	}
	return fmt.Sprintf("client %q may not act for tenant %q (-auth.client-tenants-file)", e.Identity, e.Tenant)
}

// Authorizer answers which tenants an identity may act for, from the
// current -auth.client-tenants-file.
type Authorizer struct {
	cfg    Config
	logger *slog.Logger
	list   atomic.Pointer[allowList] // nil: no file, every tenant allowed
	sum    [sha256.Size]byte

	reloads         *prometheus.CounterVec
	lastReload      prometheus.Gauge
	refusals        prometheus.Counter
	identitiesGauge prometheus.Gauge
}

// New loads -auth.client-tenants-file, failing when it does not load: a
// process must not start with an allow-list other than the one asked for.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Authorizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	a := &Authorizer{
		cfg:    cfg,
		logger: logger,
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_auth_client_tenants_reloads_total",
			Help: "Loads of -auth.client-tenants-file, by result (success, failure).",
		}, []string{"result"}),
		lastReload: f.NewGauge(prometheus.GaugeOpts{
			Name: "cortex_auth_client_tenants_last_reload_successful_timestamp_seconds",
			Help: "When -auth.client-tenants-file last loaded successfully.",
		}),
		refusals: f.NewCounter(prometheus.CounterOpts{
			Name: "cortex_auth_tenant_refusals_total",
			Help: "Requests refused because their client identity may not act for the tenant they name.",
		}),
		identitiesGauge: f.NewGauge(prometheus.GaugeOpts{
			Name: "cortex_auth_client_identities",
			Help: "Client identities listed in -auth.client-tenants-file.",
		}),
	}
	if cfg.ClientTenantsFile != "" {
		if err := a.reload(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// reload reads the file again when its content changed; a file that does
// not load leaves the current list in place.
func (a *Authorizer) reload() error {
	data, err := os.ReadFile(a.cfg.ClientTenantsFile)
	if err != nil {
		a.reloads.WithLabelValues("failure").Inc()
		return fmt.Errorf("-auth.client-tenants-file: %w", err)
	}
	sum := sha256.Sum256(data)
	if a.list.Load() != nil && sum == a.sum {
		return nil
	}
	l, err := ParseClientTenants(a.cfg.ClientTenantsFile, data)
	if err != nil {
		a.reloads.WithLabelValues("failure").Inc()
		return err
	}
	a.list.Store(l)
	a.sum = sum
	a.reloads.WithLabelValues("success").Inc()
	a.lastReload.SetToCurrentTime()
	a.identitiesGauge.Set(float64(len(l.tenants)))
	a.logger.Info("loaded client tenants", "file", a.cfg.ClientTenantsFile, "identities", len(l.tenants))
	return nil
}

// Service reloads the file every -auth.client-tenants-reload-period, keeping
// the last good list when a new version does not load. Without a file it
// does nothing.
func (a *Authorizer) Service() services.Service {
	if a.cfg.ClientTenantsFile == "" {
		return services.NewIdleService(nil, nil)
	}
	return services.NewTimerService(a.cfg.ClientTenantsReloadPeriod, nil, func(context.Context) error {
		if err := a.reload(); err != nil {
			a.logger.Error("client tenants file did not load; keeping the last good one", "err", err)
		}
		return nil
	}, nil)
}

// Check returns a *ForbiddenError unless identity may act for every tenant
// of orgID (tenants joined by '|' for a query of several).
func (a *Authorizer) Check(identity, orgID string) error {
	l := a.list.Load()
	if l == nil {
		return nil
	}
	for _, t := range strings.Split(orgID, "|") {
		if l.all[identity] || l.tenants[identity][t] {
			continue
		}
		a.refusals.Inc()
		return &ForbiddenError{Identity: identity, Tenant: t}
	}
	return nil
}

// TenantsOf lists the tenants an identity may act for, sorted, "*" for
// all; nil without a file.
func (a *Authorizer) TenantsOf(identity string) []string {
	l := a.list.Load()
	if l == nil {
		return nil
	}
	if l.all[identity] {
		return []string{AllTenants}
	}
	out := make([]string, 0, len(l.tenants[identity]))
	for t := range l.tenants[identity] {
		out = append(out, t)
	}
	sort.Strings(out)
	return slices.Clip(out)
}
