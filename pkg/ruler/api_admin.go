package ruler

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/prometheus/prometheus/model/rulefmt"
	"go.yaml.in/yaml/v3"

	"github.com/cortex-tls/cortex/pkg/ruler/rulestore"
	"github.com/cortex-tls/cortex/pkg/util/tenantyaml"
)

// The ruler's administrative API, Cortex's: served whatever -ruler.enable-api
// says, for operators rather than tenants.

// ListAllRules answers GET /ruler/rule_groups: every tenant's rule groups in
// the rule store, as a YAML map of tenant to namespace to groups (Cortex's
// answer, in tenant order). The route admits only identities given every
// tenant.
func (a *ConfigAPI) ListAllRules(w http.ResponseWriter, r *http.Request) {
	tenants, err := a.store.ListAllUsers(r.Context())
	if err != nil {
		a.logger.Error("listing the tenants of the rule store failed", "err", err)
		http.Error(w, "unable to list all users: "+err.Error(), http.StatusInternalServerError)
		return
	}
	fetch := func(ctx context.Context, tenant string) (map[string][]rulefmt.RuleGroup, bool, error) {
		groups, err := a.store.ListRuleGroups(ctx, tenant, "")
		if err != nil {
			return nil, false, err
		}
		byNamespace := map[string][]rulefmt.RuleGroup{}
		for _, g := range groups {
			byNamespace[g.Namespace] = append(byNamespace[g.Namespace], g.Group)
		}
		return byNamespace, len(groups) > 0, nil
	}
	tenantyaml.Write(w, r, tenants, fetch, yaml.Marshal, a.logger)
}

// DeleteTenantConfiguration answers POST /ruler/delete_tenant_config: every
// rule group of the request's tenant is deleted from the rule store; 200,
// also when the tenant had none (Cortex's answers); 501 when the rule store
// is read-only (configdb, local). The rulers stop
// evaluating the groups at their next poll.
func (a *ConfigAPI) DeleteTenantConfiguration(w http.ResponseWriter, r *http.Request) {
	userID, ok := a.writer(w, r)
	if !ok {
		return
	}
	groups, err := a.store.ListRuleGroups(r.Context(), userID, "")
	if err != nil {
		a.serverError(w, "listing the tenant's rule groups", userID, err)
		return
	}
	var namespaces []string
	for _, g := range groups {
		if !slices.Contains(namespaces, g.Namespace) {
			namespaces = append(namespaces, g.Namespace)
		}
	}
	for _, ns := range namespaces {
		err := a.store.DeleteNamespace(r.Context(), userID, ns)
		switch {
		case errors.Is(err, rulestore.ErrGroupNamespaceNotFound):
			// deleted since the listing
		case errors.Is(err, rulestore.ErrReadOnly):
			// The path has no other method: 501 rather than 405.
			http.Error(w, readOnlyStoreMessage(err), http.StatusNotImplemented)
			return
		case err != nil:
			a.serverError(w, "deleting the tenant's rule groups", userID, err)
			return
		}
	}
	a.logger.Info("deleted all tenant rule groups", "user", userID, "namespaces", len(namespaces))
	w.WriteHeader(http.StatusOK)
}
