package api

import "github.com/cortex-tls/cortex/pkg/ruler"

// RegisterRuler mounts Prometheus' rules and alerts API under each prefix
// (-http.prometheus-http-prefix, then Cortex's legacy /api/prom), answered
// by the ruler for the request's tenant. An empty prefix is skipped: its
// /api/v1/rules is the ruler's configuration API.
func (a *API) RegisterRuler(r *ruler.Ruler, prefixes []string) {
	for i, prefix := range prefixes {
		if prefix == "" {
			continue
		}
		rulesDesc, alertsDesc := "The tenant's recording and alerting rules and their state (Prometheus' API)", "The tenant's active alerts (Prometheus' API)"
		if i > 0 {
			rulesDesc, alertsDesc = "", "" // the same pages under a second prefix
		}
		a.route(Route{Module: "ruler", Methods: get, Path: prefix + "/api/v1/rules", Tenant: true, Desc: rulesDesc}, r.RulesHandler())
		a.route(Route{Module: "ruler", Methods: get, Path: prefix + "/api/v1/alerts", Tenant: true, Desc: alertsDesc}, r.AlertsHandler())
	}
}
