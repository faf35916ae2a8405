package api

import (
	"net/http"

	"github.com/cortex-tls/cortex/pkg/alertmanager"
	"github.com/cortex-tls/cortex/pkg/ruler"
)

// RegisterRulerAdmin mounts the ruler's administrative API, as Cortex
// serves it whatever -ruler.enable-api says: every tenant's rule groups
// (identities given every tenant only), and the deletion of the request's
// tenant's rule groups.
func (a *API) RegisterRulerAdmin(c *ruler.ConfigAPI) {
	a.route(Route{Module: "ruler", Methods: get, Path: "/ruler/rule_groups", AllTenants: true, Desc: "Every tenant's rule groups in the rule store, as YAML"}, http.HandlerFunc(c.ListAllRules))
	a.route(Route{Module: "ruler", Methods: post, Path: "/ruler/delete_tenant_config", Tenant: true, Desc: "Delete every rule group of the tenant from the rule store"}, http.HandlerFunc(c.DeleteTenantConfiguration))
}

// RegisterAlertmanagerAdmin mounts the alertmanager's status page and
// administrative API, as Cortex serves them whatever
// -experimental.alertmanager.enable-api says: every tenant's configuration
// (identities given every tenant only), and the deletion of the request's
// tenant's configuration.
func (a *API) RegisterAlertmanagerAdmin(am *alertmanager.MultitenantAlertmanager) {
	a.route(Route{Module: "alertmanager", Methods: get, Path: "/multitenant_alertmanager/status", AllTenants: true, Desc: "Alertmanager status: gossip cluster members, ring instance, tenants running here"}, am.StatusHandler())
	a.route(Route{Module: "alertmanager", Methods: get, Path: "/multitenant_alertmanager/configs", AllTenants: true, Desc: "Every tenant's Alertmanager configuration in the alertmanager storage, as YAML, secrets masked"}, http.HandlerFunc(am.ListAllConfigs))
	a.route(Route{Module: "alertmanager", Methods: post, Path: "/multitenant_alertmanager/delete_tenant_config", Tenant: true, Desc: "Delete the tenant's Alertmanager configuration from the alertmanager storage"}, http.HandlerFunc(am.DeleteUserConfig))
}
