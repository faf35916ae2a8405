package ruler

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/cortex-tls/cortex/pkg/ruler/rulestore"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// MaxRuleGroupBytes bounds the body of a rule group posted to the
// configuration API; a larger body is refused with 413.
const MaxRuleGroupBytes = 1 << 20

// Cortex's answers of the configuration API, which cortextool and Grafana's
// rule editor recognise.
var (
	// ErrNoRuleGroups answers a listing with no group (404).
	ErrNoRuleGroups = errors.New("no rule groups found")
	// errAPIGroupNotFound answers a group that does not exist (404): Cortex's
	// text of its rulestore.ErrGroupNotFound.
	errAPIGroupNotFound = errors.New("group does not exist")
	// errAPINamespaceNotFound answers the deletion of a namespace with no group
	// (404): Cortex's text of its rulestore.ErrGroupNamespaceNotFound.
	errAPINamespaceNotFound = errors.New("group namespace does not exist")
)

// APIConfig holds the configuration API's flag. It belongs in the ruler's
// configuration block, inline (YAML ruler.enable_api, as in Cortex); with
// EnableAPI set, the ruler module mounts NewConfigAPI over the rule store
// with pkg/api's RegisterRulerConfigAPI.
type APIConfig struct {
	// EnableAPI mounts the configuration API. It is off by default, as in
	// Cortex: the API lets every tenant store rules that the ruler then
	// evaluates with the tenant's queries, which an operator turns on
	// knowingly; -target=all needs only the read API (/prometheus/api/v1/rules
	// and /alerts), which the ruler serves whatever this flag says.
	EnableAPI bool `yaml:"enable_api"`
}

// RegisterFlags registers -ruler.enable-api and Cortex's name for it,
// -experimental.ruler.enable-api: either sets the switch.
func (c *APIConfig) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.EnableAPI, "experimental.ruler.enable-api", false, "Serve the ruler's configuration API: Cortex's name of -ruler.enable-api.")
	f.BoolVar(&c.EnableAPI, "ruler.enable-api", false, "Serve the ruler's configuration API (GET, POST and DELETE under /api/v1/rules and Cortex's legacy /api/prom/rules), through which each tenant lists, stores and deletes its rule groups. Writes need -ruler-storage.backend to be an object storage backend.")
}

// ConfigAPI is the ruler's configuration API, Cortex's: each tenant's rule
// groups by namespace (Prometheus' rule file name), read from and written to
// the rule store as YAML. The route table puts the tenant in the request
// context and the {namespace} and {groupName} path values in the request.
type ConfigAPI struct {
	store  rulestore.Store
	limits *validation.Overrides
	parser parser.Parser
	logger *slog.Logger
	// origin refuses writes a browser sends on behalf of another site
	// (Sec-Fetch-Site, Origin): a form posted from another page could
	// otherwise store a rule group with the credentials of the browser's
	// client certificate. cortextool, curl and Grafana's server-side proxy
	// send neither header and are not affected.
	origin *http.CrossOriginProtection
}

// NewConfigAPI returns the API over store, refusing groups over the
// tenant's -ruler.max-rules-per-rule-group and
// -ruler.max-rule-groups-per-tenant limits. A nil logger discards.
func NewConfigAPI(store rulestore.Store, limits *validation.Overrides, logger *slog.Logger, opts ...APIOption) *ConfigAPI {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &ConfigAPI{
		store:  store,
		limits: limits,
		parser: parser.NewParser(parser.Options{}),
		logger: logger.With("component", "ruler-api"),
		origin: http.NewCrossOriginProtection(),
	}
	for _, o := range opts {
		o(a)
	}
	return a
}

// APIOption changes a ConfigAPI built by NewConfigAPI.
type APIOption func(*ConfigAPI)

// WithAPIParserOptions gives the API the querier's parser options
// (-querier.enable-promql-experimental-functions): a rule is accepted
// exactly when its expression would run as a query.
func WithAPIParserOptions(o parser.Options) APIOption {
	return func(a *ConfigAPI) { a.parser = parser.NewParser(o) }
}

// ListRules answers GET /api/v1/rules (every namespace) and
// GET /api/v1/rules/{namespace}: a YAML map of namespace to its groups, or
// 404 "no rule groups found".
func (a *ConfigAPI) ListRules(w http.ResponseWriter, r *http.Request) {
	userID, ok := a.tenant(w, r)
	if !ok {
		return
	}
	namespace := r.PathValue("namespace")
	groups, err := a.store.ListRuleGroups(r.Context(), userID, namespace)
	if err != nil {
		// Cortex answers 400 here; a failing store is the server's fault.
		a.serverError(w, "listing rule groups", userID, err)
		return
	}
	if len(groups) == 0 {
		http.Error(w, ErrNoRuleGroups.Error(), http.StatusNotFound)
		return
	}
	formatted := map[string][]rulefmt.RuleGroup{}
	for _, g := range groups {
		formatted[g.Namespace] = append(formatted[g.Namespace], g.Group)
	}
	a.sendYAML(w, formatted)
}

// GetRuleGroup answers GET /api/v1/rules/{namespace}/{groupName}: the group
// as YAML, or 404 "group does not exist".
func (a *ConfigAPI) GetRuleGroup(w http.ResponseWriter, r *http.Request) {
	userID, ok := a.tenant(w, r)
	if !ok {
		return
	}
	g, err := a.store.GetRuleGroup(r.Context(), userID, r.PathValue("namespace"), r.PathValue("groupName"))
	if errors.Is(err, rulestore.ErrGroupNotFound) {
		http.Error(w, errAPIGroupNotFound.Error(), http.StatusNotFound)
		return
	}
	if err != nil {
		a.serverError(w, "reading the rule group", userID, err)
		return
	}
	a.sendYAML(w, g.Group)
}

// CreateRuleGroup answers POST /api/v1/rules/{namespace}: the body is one
// rule group in YAML (or JSON), which replaces the namespace's group of the
// same name or adds it. A group Prometheus would not load, or over the
// tenant's limits (rules per group, groups, and the query expression size
// and depth limits, checked before parsing), is refused with 400 naming the
// group, the rule and the line; a read-only store with 405. Success is 202
// Accepted, as in Cortex: the rulers load the group at their next poll.
func (a *ConfigAPI) CreateRuleGroup(w http.ResponseWriter, r *http.Request) {
	userID, ok := a.writer(w, r)
	if !ok {
		return
	}
	namespace := r.PathValue("namespace")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRuleGroupBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, fmt.Sprintf("request body too large: a rule group may be at most %d bytes", MaxRuleGroupBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading the request body: "+err.Error(), http.StatusBadRequest)
		return
	}

	limits := a.limits.For(userID)
	rg, err := ParseRuleGroup(body, a.parser, limits)
	if err != nil {
		a.logger.Debug("rule group refused", "user", userID, "namespace", namespace, "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if limit := limits.RulerMaxRulesPerRuleGroup; limit > 0 && len(rg.Rules) > limit {
		http.Error(w, fmt.Sprintf("rule group %q: per-user rules per rule group limit (limit: %d actual: %d) exceeded (-ruler.max-rules-per-rule-group)", rg.Name, limit, len(rg.Rules)), http.StatusBadRequest)
		return
	}
	if limit := limits.RulerMaxRuleGroupsPerTenant; limit > 0 {
		existing, err := a.store.ListRuleGroups(r.Context(), userID, "")
		if err != nil {
			a.serverError(w, "listing the tenant's rule groups to check -ruler.max-rule-groups-per-tenant", userID, err)
			return
		}
		n := len(existing) + 1
		for _, g := range existing {
			if g.Namespace == namespace && g.Group.Name == rg.Name {
				n-- // replaced, not added
				break
			}
		}
		if n > limit {
			http.Error(w, fmt.Sprintf("rule group %q: per-user rule groups limit (limit: %d actual: %d) exceeded (-ruler.max-rule-groups-per-tenant)", rg.Name, limit, n), http.StatusBadRequest)
			return
		}
	}

	err = a.store.SetRuleGroup(r.Context(), rulestore.RuleGroup{User: userID, Namespace: namespace, Group: rg})
	if errors.Is(err, rulestore.ErrReadOnly) {
		respondReadOnlyStore(w, err)
		return
	}
	if err != nil {
		a.logger.Error("storing the rule group failed", "user", userID, "namespace", namespace, "group", rg.Name, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	a.logger.Debug("rule group stored", "user", userID, "namespace", namespace, "group", rg.Name)
	respondConfigAccepted(w)
}

// DeleteNamespace answers DELETE /api/v1/rules/{namespace}: 202, or 404
// "group namespace does not exist".
func (a *ConfigAPI) DeleteNamespace(w http.ResponseWriter, r *http.Request) {
	userID, ok := a.writer(w, r)
	if !ok {
		return
	}
	err := a.store.DeleteNamespace(r.Context(), userID, r.PathValue("namespace"))
	switch {
	case errors.Is(err, rulestore.ErrGroupNamespaceNotFound):
		http.Error(w, errAPINamespaceNotFound.Error(), http.StatusNotFound)
	case errors.Is(err, rulestore.ErrReadOnly):
		respondReadOnlyStore(w, err)
	case err != nil:
		a.serverError(w, "deleting the namespace", userID, err)
	default:
		respondConfigAccepted(w)
	}
}

// DeleteRuleGroup answers DELETE /api/v1/rules/{namespace}/{groupName}: 202,
// or 404 "group does not exist".
func (a *ConfigAPI) DeleteRuleGroup(w http.ResponseWriter, r *http.Request) {
	userID, ok := a.writer(w, r)
	if !ok {
		return
	}
	err := a.store.DeleteRuleGroup(r.Context(), userID, r.PathValue("namespace"), r.PathValue("groupName"))
	switch {
	case errors.Is(err, rulestore.ErrGroupNotFound):
		http.Error(w, errAPIGroupNotFound.Error(), http.StatusNotFound)
	case errors.Is(err, rulestore.ErrReadOnly):
		respondReadOnlyStore(w, err)
	case err != nil:
		a.serverError(w, "deleting the rule group", userID, err)
	default:
		respondConfigAccepted(w)
	}
}

// tenant returns the request's tenant, which the route table has checked;
// a request without one is answered 401.
func (a *ConfigAPI) tenant(w http.ResponseWriter, r *http.Request) (string, bool) {
	userID, err := tenant.ID(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return "", false
	}
	return userID, true
}

// writer is tenant for the requests that change rule groups, which are
// refused with 403 when a browser sends them from another site.
func (a *ConfigAPI) writer(w http.ResponseWriter, r *http.Request) (string, bool) {
	if err := a.origin.Check(r); err != nil {
		http.Error(w, "forbidden: rule groups are not changed by a browser request from another site ("+err.Error()+")", http.StatusForbidden)
		return "", false
	}
	return a.tenant(w, r)
}

// configAPIResponse is Prometheus' API envelope, in the form Cortex's ruler API
// writes it (every field present).
type configAPIResponse struct {
	Status    string `json:"status"`
	Data      any    `json:"data"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
}

func writeConfigAPIJSON(w http.ResponseWriter, status int, resp configAPIResponse) {
	b, err := json.Marshal(resp)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// respondConfigAccepted is Cortex's answer to a stored change: 202, as the rulers
// load it at their next poll.
func respondConfigAccepted(w http.ResponseWriter) {
	writeConfigAPIJSON(w, http.StatusAccepted, configAPIResponse{Status: "success"})
}

func (a *ConfigAPI) serverError(w http.ResponseWriter, doing, userID string, err error) {
	a.logger.Error(doing+" failed", "user", userID, "err", err)
	writeConfigAPIJSON(w, http.StatusInternalServerError, configAPIResponse{Status: "error", ErrorType: "server_error", Error: err.Error()})
}

// respondReadOnlyStore answers a write to a store the API cannot write
// (configdb, local): 405, naming the flag that chose it.
func respondReadOnlyStore(w http.ResponseWriter, err error) {
	w.Header().Set("Allow", http.MethodGet)
	http.Error(w, readOnlyStoreMessage(err), http.StatusMethodNotAllowed)
}

func readOnlyStoreMessage(err error) string {
	msg := err.Error()
	if !strings.Contains(msg, "-ruler-storage.backend") {
		msg += ": the ruler API writes rule groups only with -ruler-storage.backend set to an object storage backend (filesystem, s3, gcs, azure or swift)"
	}
	return msg
}

func (a *ConfigAPI) sendYAML(w http.ResponseWriter, v any) {
	out, err := yaml.Marshal(v)
	if err != nil {
		a.logger.Error("encoding rule groups as YAML failed", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(out)
}
