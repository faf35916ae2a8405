package api

import (
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"

	"github.com/cortex-tls/cortex/pkg/alertmanager"
	"github.com/cortex-tls/cortex/pkg/alertmanager/ui"
	"github.com/cortex-tls/cortex/pkg/configs"
	"github.com/cortex-tls/cortex/pkg/distributor"
	"github.com/cortex-tls/cortex/pkg/ingester"
	"github.com/cortex-tls/cortex/pkg/overrides"
	"github.com/cortex-tls/cortex/pkg/purger"
	"github.com/cortex-tls/cortex/pkg/ruler"
	"github.com/cortex-tls/cortex/pkg/util/fgprofhttp"
)

// Every HTTP path of every module, in one place. A new component adds a
// Register function here and calls it from its module's constructor.

var (
	get     = []string{http.MethodGet}
	post    = []string{http.MethodPost}
	getPost = []string{http.MethodGet, http.MethodPost}
)

// Server are the handlers every process serves, whatever its target.
type Server struct {
	Ready, Healthz, Metrics, Config, RuntimeConfig, Services http.Handler
	// Instrumentation is -server.register-instrumentation: whether
	// /metrics and /debug/pprof are served.
	Instrumentation bool
}

// RegisterServer mounts the probe, metrics and introspection pages, and
// Go's profiler as Cortex exposes it (behind the HTTP server's TLS and
// client authentication, like every other route).
func (a *API) RegisterServer(s Server) {
	a.route(Route{Module: "server", Methods: get, Path: "/ready", Desc: "Readiness: 200 once every module of this process runs and can take traffic"}, s.Ready)
	a.route(Route{Module: "server", Methods: get, Path: "/healthz", Desc: "Liveness: 200 while the process serves HTTP"}, s.Healthz)
	if s.Instrumentation {
		a.route(Route{Module: "server", Methods: get, Path: "/metrics", Desc: "Prometheus metrics"}, s.Metrics)
	}
	a.route(Route{Module: "server", Methods: get, Path: "/config", AllTenants: true, Desc: "The effective configuration, as YAML (?mode=diff: what differs from the defaults; ?mode=defaults)"}, s.Config)
	a.route(Route{Module: "server", Methods: get, Path: "/runtime_config", AllTenants: true, Desc: "The runtime configuration in force: every tenant's overrides, multi_kv_config, ingester_limits (?mode=diff: what differs from the defaults)"}, s.RuntimeConfig)
	a.route(Route{Module: "server", Methods: get, Path: "/services", Desc: "The state of each module"}, s.Services)
	// fgprof's wall-clock profile, as Cortex serves it whatever
	// -server.register-instrumentation; unlisted, as the CPU profile: it
	// takes ?seconds= to answer.
	a.route(Route{Module: "server", Methods: get, Path: "/debug/fgprof", AllTenants: true}, fgprofhttp.Handler())
	if !s.Instrumentation {
		return
	}
	a.route(Route{Module: "server", Path: "/debug/pprof/", AllTenants: true, Desc: "Go profiles"}, http.HandlerFunc(pprof.Index))
	a.route(Route{Module: "server", Path: "/debug/pprof/cmdline", AllTenants: true}, http.HandlerFunc(pprof.Cmdline))
	a.route(Route{Module: "server", Path: "/debug/pprof/profile", AllTenants: true}, http.HandlerFunc(pprof.Profile))
	a.route(Route{Module: "server", Path: "/debug/pprof/symbol", AllTenants: true}, http.HandlerFunc(pprof.Symbol))
	a.route(Route{Module: "server", Path: "/debug/pprof/trace", AllTenants: true}, http.HandlerFunc(pprof.Trace))
}

// RegisterRing mounts the ingester ring's status page (HTML and JSON, with
// "forget") from whichever of the ring client or the ingester's lifecycler
// the process runs. Like every ring page, its "Forget" form carries a CSRF
// token, checked on POST.
func (a *API) RegisterRing(ring http.Handler) {
	ring = a.csrf.protect(ring)
	a.route(Route{Module: "ring", Path: "/ingester/ring", AllTenants: true, Desc: "Ingester ring status"}, ring)
	a.route(Route{Module: "ring", Path: "/ring", AllTenants: true}, ring) // Cortex's older path
}

// RegisterStoreGatewayRing mounts the store-gateway ring's status page.
func (a *API) RegisterStoreGatewayRing(ring http.Handler) {
	ring = a.csrf.protect(ring)
	a.route(Route{Module: "store-gateway", Path: "/store-gateway/ring", AllTenants: true, Desc: "Store-gateway ring status"}, ring)
}

// RegisterCompactor mounts the compactor ring's status page (a note when
// -compactor.sharding-enabled is false, as in Cortex).
func (a *API) RegisterCompactor(ring http.Handler) {
	ring = a.csrf.protect(ring)
	a.route(Route{Module: "compactor", Methods: getPost, Path: "/compactor/ring", AllTenants: true, Desc: "Compactor ring status"}, ring)
}

// RegisterMemberlist mounts the gossip members page.
func (a *API) RegisterMemberlist(members http.Handler) {
	a.route(Route{Module: "memberlist", Methods: get, Path: "/memberlist", Desc: "Gossip members"}, members)
}

// RegisterIngester mounts the ingester's own pages.
//
// A browser holding its user's client certificate could be made to send
// a request that changes state by another site: flushing, shutting down
// and changing the mode are POST only, and a POST a browser marks as
// cross-origin (Sec-Fetch-Site, Origin) is refused.
func (a *API) RegisterIngester(i *ingester.Ingester) {
	flush := sameOriginOnly(i.FlushHandler())
	a.route(Route{Module: "ingester", Methods: post, Path: "/ingester/flush", AllTenants: true, Desc: "Cut every tenant's head into blocks and ship them (?tenant= for some), answering when done", NotAllowed: "flushing needs POST"}, flush)
	a.route(Route{Module: "ingester", Methods: post, Path: "/flush", AllTenants: true, NotAllowed: "flushing needs POST"}, flush) // Cortex's legacy path
	shutdown := Route{Module: "ingester", Methods: post, Path: "/ingester/shutdown", AllTenants: true, Desc: "Leave the ring, flush every tenant's head to long-term storage and stop the ingester (the process serves its other modules on), answering when done", NotAllowed: "shutting the ingester down needs POST"}
	a.route(shutdown, sameOriginOnly(i.ShutdownHandler()))
	shutdown.Path, shutdown.Desc = "/shutdown", "" // Cortex's legacy path
	a.route(shutdown, sameOriginOnly(i.ShutdownHandler()))
	a.route(Route{Module: "ingester", Methods: getPost, Path: "/ingester/mode", AllTenants: true, Desc: "The ingester's mode; POST ?mode=READONLY stops writes to it (queries still read it), ?mode=ACTIVE resumes them"}, sameOriginOnly(i.ModeHandler()))
	a.route(Route{Module: "ingester", Methods: get, Path: "/ingester/all_user_stats", AllTenants: true, Desc: "Series and ingestion rate of every tenant this ingester holds"}, i.AllUserStatsHandler())
}

// RegisterDistributor mounts remote write (also at <legacyPrefix>/push,
// Cortex's -http.prefix, unless empty), OTLP metrics and the tenants'
// ingestion stats.
func (a *API) RegisterDistributor(d *distributor.Distributor, legacyPrefix string) {
	push := d.PushHandler()
	a.route(Route{Module: "distributor", Methods: post, Path: "/api/v1/push", Tenant: true, Desc: "Prometheus remote write 1.0 and 2.0"}, push)
	if legacyPrefix != "" {
		a.route(Route{Module: "distributor", Methods: post, Path: legacyPrefix + "/push", Tenant: true}, push) // Cortex's legacy path
	}
	a.route(Route{Module: "distributor", Methods: post, Path: "/api/v1/otlp/v1/metrics", Tenant: true, Desc: "OpenTelemetry OTLP/HTTP metrics (protobuf or JSON)"}, d.OTLPHandler())
	a.route(Route{Module: "distributor", Path: "/distributor/all_user_stats", AllTenants: true, Desc: "Ingestion rate and series per tenant"}, d.AllUserStatsHandler())
	a.route(Route{Module: "distributor", Path: "/all_user_stats", AllTenants: true}, d.AllUserStatsHandler()) // Cortex's legacy path
}

// RegisterHATracker mounts the HA tracker's status page: every tenant's
// elected replicas.
func (a *API) RegisterHATracker(h http.Handler) {
	a.route(Route{Module: "distributor", Methods: get, Path: "/distributor/ha_tracker", AllTenants: true, Desc: "Elected replica of every tenant's HA clusters"}, h)
	a.route(Route{Module: "distributor", Methods: get, Path: "/ha-tracker", AllTenants: true}, h) // Cortex's legacy path
}

// PrometheusAPIPaths are the Prometheus HTTP API's paths under each prefix's
// /api/v1, with their methods: the querier answers them, behind the
// query-frontend when the process runs one.
var PrometheusAPIPaths = []struct {
	Methods []string
	Path    string
	Desc    string
}{
	{getPost, "/query", "Instant query"},
	{getPost, "/query_range", "Range query"},
	{getPost, "/query_exemplars", "Exemplars"},
	{getPost, "/labels", "Label names"},
	{get, "/label/{name}/values", "Label values"},
	{getPost, "/series", "Series"},
	{get, "/metadata", "Metric metadata"},
	{get, BuildInfoPath, "Build information (-api.build-info-enabled)"},
	{get, "/status/tsdb", "Head statistics of the tenant's series in the ingesters"},
	{post, "/read", "Prometheus remote read (SAMPLES and STREAMED_XOR_CHUNKS)"},
	{getPost, "/format_query", "Format a PromQL expression"},
	{getPost, "/parse_query", "A PromQL expression's syntax tree, as JSON"},
}

// BuildInfoPath is the build information's path under <prefix>/api/v1.
const BuildInfoPath = "/status/buildinfo"

// RegisterPrometheusAPI mounts the Prometheus API under each prefix
// (-http.prometheus-http-prefix, then Cortex's legacy -http.prefix), served
// by module: the querier's handler, or the query-frontend's queue in front
// of it, which see every request under the first prefix. Every path also
// answers CORS preflight (OPTIONS) as Prometheus does.
func (a *API) RegisterPrometheusAPI(module string, prefixes []string, handler http.Handler) {
	for i, prefix := range prefixes {
		h := handler
		if i > 0 {
			h = underPrefix(prefix, prefixes[0], handler)
		}
		h = a.withCORS(h)
		for _, p := range PrometheusAPIPaths {
			if p.Path == BuildInfoPath && !a.cfg.BuildInfoEnabled {
				// -api.build-info-enabled=false: not found, rather
				// than reaching the querier by the route below.
				a.route(Route{Module: module, Path: prefix + "/api/v1" + p.Path}, http.NotFoundHandler())
				continue
			}
			desc := p.Desc
			if i > 0 {
				desc = "" // the same page under a second prefix
			}
			methods := append(append([]string{}, p.Methods...), http.MethodOptions)
			a.route(Route{Module: module, Methods: methods, Path: prefix + "/api/v1" + p.Path, Tenant: true, Desc: desc}, h)
		}
		// Every other path under /api/v1 (status/config, targets, ...)
		// reaches the querier too, which answers 404 with Prometheus's
		// not_found error rather than the mux's 405.
		a.route(Route{Module: module, Path: prefix + "/api/v1/", Tenant: true}, h)
	}
}

// RegisterUserStats mounts Cortex's /api/v1/user_stats, and the legacy
// <legacyPrefix>/user_stats (-http.prefix) unless empty: the tenant's
// series and ingestion rate, from the querier.
func (a *API) RegisterUserStats(h http.Handler, legacyPrefix string) {
	a.route(Route{Module: "querier", Methods: get, Path: "/api/v1/user_stats", Tenant: true, Desc: "The tenant's series and ingestion rate over the ingesters"}, h)
	if legacyPrefix != "" {
		a.route(Route{Module: "querier", Methods: get, Path: legacyPrefix + "/user_stats", Tenant: true}, h) // Cortex's legacy path
	}
}

// RegisterAlertmanager mounts each tenant's Alertmanager v2 API (what
// amtool and Grafana's Alertmanager data source call), its web UI and its
// probes.
func (a *API) RegisterAlertmanager(am *alertmanager.MultitenantAlertmanager) {
	h := am.Handler()
	if a.cfg.AlertmanagerHTTPPrefix != alertmanagerBase {
		h = underPrefix(a.cfg.AlertmanagerHTTPPrefix, alertmanagerBase, h)
	}
	p := a.alertmanagerPath(alertmanager.APIPrefix)
	a.route(Route{Module: "alertmanager", Methods: get, Path: p + "/status", Tenant: true, Desc: "The tenant's Alertmanager status and configuration"}, h)
	a.route(Route{Module: "alertmanager", Methods: get, Path: p + "/receivers", Tenant: true, Desc: "Receivers"}, h)
	a.route(Route{Module: "alertmanager", Methods: getPost, Path: p + "/alerts", Tenant: true, Desc: "Alerts: list, or post new ones"}, h)
	a.route(Route{Module: "alertmanager", Methods: get, Path: p + "/alerts/groups", Tenant: true, Desc: "Alert groups"}, h)
	a.route(Route{Module: "alertmanager", Methods: getPost, Path: p + "/silences", Tenant: true, Desc: "Silences: list, or create one"}, h)
	a.route(Route{Module: "alertmanager", Methods: []string{http.MethodGet, http.MethodDelete}, Path: p + "/silence/{id}", Tenant: true, Desc: "One silence: get or expire"}, h)
	a.route(Route{Module: "alertmanager", Methods: get, Path: a.cfg.AlertmanagerHTTPPrefix, Tenant: true, Desc: "Alertmanager UI: the tenant's alerts, silences and status (redirects to its page, under the trailing slash)"}, http.HandlerFunc(ui.RedirectToPage))
	a.route(Route{Module: "alertmanager", Methods: get, Path: a.alertmanagerPath("/alertmanager/{$}"), Tenant: true}, h)
	a.route(Route{Module: "alertmanager", Methods: get, Path: a.alertmanagerPath("/alertmanager/script.js"), Tenant: true}, h)
	a.route(Route{Module: "alertmanager", Methods: get, Path: a.alertmanagerPath("/alertmanager/favicon.ico"), Tenant: true}, h)
	a.route(Route{Module: "alertmanager", Methods: get, Path: a.alertmanagerPath("/alertmanager/lib/"), Tenant: true}, h)
	a.route(Route{Module: "alertmanager", Methods: get, Path: a.alertmanagerPath("/alertmanager/-/healthy"), Tenant: true}, h)
	a.route(Route{Module: "alertmanager", Methods: get, Path: a.alertmanagerPath("/alertmanager/-/ready"), Tenant: true}, h)
	if am.ConfigAPIEnabled() {
		a.route(Route{Module: "alertmanager", Methods: []string{http.MethodGet, http.MethodPost, http.MethodDelete}, Path: alertmanager.ConfigAPIPath, Tenant: true, Desc: "The tenant's Alertmanager configuration in the alertmanager storage"}, am.ConfigHandler())
	}
}

// RegisterConfigs mounts the configs API: the tenant API, and the private
// API (no tenant) the alertmanagers and rulers poll.
func (a *API) RegisterConfigs(c *configs.API) {
	h, private := c.TenantHandler(), c.PrivateHandler()
	a.route(Route{Module: "configs", Methods: getPost, Path: "/api/prom/configs/alertmanager", Tenant: true, Desc: "The tenant's Alertmanager configuration"}, h)
	a.route(Route{Module: "configs", Methods: post, Path: "/api/prom/configs/alertmanager/validate", Tenant: true, Desc: "Validate an Alertmanager configuration"}, h)
	a.route(Route{Module: "configs", Methods: getPost, Path: "/api/prom/configs/templates", Tenant: true, Desc: "The template files of the tenant's Alertmanager configuration"}, h)
	a.route(Route{Module: "configs", Methods: getPost, Path: "/api/prom/configs/rules", Tenant: true, Desc: "The tenant's rules"}, h)
	a.route(Route{Module: "configs", Methods: []string{http.MethodDelete}, Path: "/api/prom/configs/deactivate", Tenant: true, Desc: "Deactivate the tenant's configs"}, h)
	a.route(Route{Module: "configs", Methods: post, Path: "/api/prom/configs/restore", Tenant: true, Desc: "Restore the tenant's configs"}, h)
	a.route(Route{Module: "configs", Methods: get, Path: "/private/api/prom/configs/alertmanager", AllTenants: true, Desc: "Every tenant's Alertmanager configuration changed since ?since="}, private)
	a.route(Route{Module: "configs", Methods: get, Path: "/private/api/prom/configs/rules", AllTenants: true, Desc: "Every tenant's rules changed since ?since="}, private)
}

// RegisterTenantDeletion mounts Cortex's tenant deletion API.
func (a *API) RegisterTenantDeletion(p *purger.TenantDeletionAPI) {
	a.route(Route{Module: "purger", Methods: post, Path: "/purger/delete_tenant", Tenant: true, Desc: "Mark the tenant for deletion: the compactor deletes its blocks, the ingesters its local data"}, http.HandlerFunc(p.DeleteTenant))
	a.route(Route{Module: "purger", Methods: get, Path: "/purger/delete_tenant_status", Tenant: true, Desc: "Whether the tenant's blocks are deleted"}, http.HandlerFunc(p.DeleteTenantStatus))
}

// RulerConfigAPIPaths are the paths the ruler's configuration API answers
// under, given the Prometheus API's prefixes (-http.prometheus-http-prefix,
// then Cortex's legacy /api/prom): Cortex's /api/v1/rules, and under each
// prefix /rules (Cortex's legacy <prefix>/rules) and /config/v1/rules.
// Grafana's rule editor calls <data source URL>/rules for a Cortex data
// source and <data source URL>/config/v1/rules for a Mimir one, so either
// kind of data source, at either prefix, finds the API.
func RulerConfigAPIPaths(prometheusPrefixes []string) []string {
	paths := []string{"/api/v1/rules"}
	for _, prefix := range prometheusPrefixes {
		if prefix == "" {
			continue // it would claim /rules and /config/v1/rules at the root
		}
		for _, p := range []string{prefix + "/rules", prefix + "/config/v1/rules"} {
			if !slices.Contains(paths, p) {
				paths = append(paths, p)
			}
		}
	}
	return paths
}

// RegisterRulerConfigAPI mounts the ruler's configuration API
// (-ruler.enable-api) under RulerConfigAPIPaths: each tenant's rule groups
// by namespace, in YAML, as cortextool rules and Grafana's rule editor use
// them.
func (a *API) RegisterRulerConfigAPI(c *ruler.ConfigAPI, prometheusPrefixes []string) {
	del := []string{http.MethodDelete}
	for i, prefix := range RulerConfigAPIPaths(prometheusPrefixes) {
		desc := func(s string) string {
			if i > 0 {
				return "" // the same page under another path
			}
			return s
		}
		a.route(Route{Module: "ruler", Methods: get, Path: prefix, Tenant: true, Desc: desc("The tenant's rule groups of every namespace")}, http.HandlerFunc(c.ListRules))
		a.route(Route{Module: "ruler", Methods: get, Path: prefix + "/{namespace}", Tenant: true, Desc: desc("The rule groups of one namespace")}, http.HandlerFunc(c.ListRules))
		a.route(Route{Module: "ruler", Methods: post, Path: prefix + "/{namespace}", Tenant: true, Desc: desc("Create or replace a rule group (YAML body)")}, http.HandlerFunc(c.CreateRuleGroup))
		a.route(Route{Module: "ruler", Methods: del, Path: prefix + "/{namespace}", Tenant: true, Desc: desc("Delete every rule group of a namespace")}, http.HandlerFunc(c.DeleteNamespace))
		a.route(Route{Module: "ruler", Methods: get, Path: prefix + "/{namespace}/{groupName}", Tenant: true, Desc: desc("One rule group")}, http.HandlerFunc(c.GetRuleGroup))
		a.route(Route{Module: "ruler", Methods: del, Path: prefix + "/{namespace}/{groupName}", Tenant: true, Desc: desc("Delete one rule group")}, http.HandlerFunc(c.DeleteRuleGroup))
	}
}

// underPrefix serves a request under from as the same request under to.
func underPrefix(from, to string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path = to + strings.TrimPrefix(r.URL.Path, from)
		r2.URL.RawPath = ""
		h.ServeHTTP(w, r2)
	})
}

// RegisterOverrides mounts Cortex's user overrides API (-target=overrides):
// a tenant reads, changes and deletes its own limits in the runtime
// configuration, within what the operator allows there.
func (a *API) RegisterOverrides(o *overrides.API) {
	const path = "/api/v1/user-overrides"
	a.route(Route{Module: "overrides", Methods: get, Path: path, Tenant: true, Desc: "The tenant's own overrides of the runtime configuration, as JSON"}, http.HandlerFunc(o.GetOverrides))
	a.route(Route{Module: "overrides", Methods: post, Path: path, Tenant: true, Desc: "Change the tenant's own limits named by the runtime configuration's api_allowed_limits (a JSON object), each within hard_overrides"}, http.HandlerFunc(o.SetOverrides))
	a.route(Route{Module: "overrides", Methods: []string{http.MethodDelete}, Path: path, Tenant: true, Desc: "Remove the tenant's own overrides"}, http.HandlerFunc(o.DeleteOverrides))
}
