package alertmanager

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"

	amconfig "github.com/prometheus/alertmanager/config"
	"gopkg.in/yaml.v3"

	"github.com/cortex-tls/cortex/pkg/alertmanager/alertstore"
	cortextenant "github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/tenantyaml"
)

// The alertmanager's administrative pages, Cortex's: served whatever
// -experimental.alertmanager.enable-api says, for operators rather than
// tenants.

// listedConfig is a tenant's entry of ListAllConfigs, Cortex's UserConfig.
type listedConfig struct {
	TemplateFiles      map[string]string `yaml:"template_files"`
	AlertmanagerConfig string            `yaml:"alertmanager_config"`
}

// unparsableConfig stands in the list for a stored configuration that does
// not parse: its secrets could not be told apart, so none of it is shown.
const unparsableConfig = "# the stored configuration does not parse as an Alertmanager configuration; not shown\n"

// ListAllConfigs answers GET /multitenant_alertmanager/configs: every
// tenant's configuration in the alertmanager storage, as a YAML map of
// tenant to alertmanager_config and template_files (Cortex's answer, in
// tenant order). Each alertmanager_config is written as Alertmanager writes
// a configuration (its config.Config String), so receivers' passwords,
// tokens, keys and secret URLs read "<secret>". The route admits only
// identities given every tenant.
func (am *MultitenantAlertmanager) ListAllConfigs(w http.ResponseWriter, r *http.Request) {
	if am.store == nil {
		http.Error(w, "no alertmanager storage is configured", http.StatusNotFound)
		return
	}
	tenants, err := am.store.ListAllUsers(r.Context())
	if err != nil {
		am.logger.Error("listing the tenants of the alertmanager storage failed", "err", err)
		http.Error(w, "unable to list all users: "+err.Error(), http.StatusInternalServerError)
		return
	}
	fetch := func(ctx context.Context, tenant string) (listedConfig, bool, error) {
		c, err := am.store.GetAlertConfig(ctx, tenant)
		if errors.Is(err, alertstore.ErrNotFound) {
			return listedConfig{}, false, nil // deleted since the listing
		}
		if err != nil {
			return listedConfig{}, false, err
		}
		templates := c.TemplateFiles
		if templates == nil {
			templates = map[string]string{}
		}
		return listedConfig{TemplateFiles: templates, AlertmanagerConfig: maskedConfig(c.AlertmanagerConfig)}, true, nil
	}
	tenantyaml.Write(w, r, tenants, fetch, yaml.Marshal, am.logger)
}

// maskedConfig is raw as Alertmanager shows a configuration, its secrets
// masked.
func maskedConfig(raw string) string {
	if raw == "" {
		return ""
	}
	c, err := amconfig.Load(raw)
	if err != nil {
		return unparsableConfig
	}
	return c.String()
}

// DeleteUserConfig answers POST /multitenant_alertmanager/delete_tenant_config:
// the request's tenant's configuration is deleted from the alertmanager
// storage; 200, also when it had none (Cortex's answers). The alertmanagers
// stop the tenant's Alertmanager at their next poll. A browser request from
// another site is refused (403), as the configuration API's writes are.
func (am *MultitenantAlertmanager) DeleteUserConfig(w http.ResponseWriter, r *http.Request) {
	if err := http.NewCrossOriginProtection().Check(r); err != nil {
		http.Error(w, "forbidden: configurations are not deleted by a browser request from another site ("+err.Error()+")", http.StatusForbidden)
		return
	}
	id, err := cortextenant.ID(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if am.store == nil {
		http.Error(w, "no alertmanager storage is configured", http.StatusNotFound)
		return
	}
	err = am.store.DeleteAlertConfig(r.Context(), id)
	switch {
	case errors.Is(err, alertstore.ErrReadOnly):
		// The path has no other method: 501 rather than 405.
		http.Error(w, err.Error(), http.StatusNotImplemented)
	case err != nil:
		am.logger.Error("deleting the tenant's Alertmanager configuration", "tenant", id, "err", err)
		http.Error(w, "deleting the configuration failed", http.StatusInternalServerError)
	default:
		am.logger.Info("deleted the tenant's Alertmanager configuration", "tenant", id)
		w.WriteHeader(http.StatusOK)
	}
}

var statusTemplate = template.Must(template.New("status").Parse(`<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Cortex Alertmanager Status</title></head>
<body>
<h1>Cortex Alertmanager Status</h1>
<h2>Gossip cluster</h2>
{{with .Cluster}}<dl>
<dt>Name</dt><dd>{{.Name}}</dd>
<dt>Addr</dt><dd>{{.Addr}}</dd>
<dt>Port</dt><dd>{{.Port}}</dd>
<dt>Status</dt><dd>{{.Status}}</dd>
<dt>Position</dt><dd>{{.Position}}</dd>
</dl>
<h3>Members</h3>
<table>
<tr><th>Name</th><th>Addr</th></tr>
{{range .Members}}<tr><td>{{.Name}}</td><td>{{.Addr}}</td></tr>
{{end}}</table>
{{else}}<p>Alertmanager gossip-based clustering is disabled.{{if .Ring}} The tenants are sharded over the alertmanager ring: each tenant's replicas exchange its state over the alertmanager gRPC service.{{end}}</p>
{{end}}<h2>Sharding</h2>
{{with .Ring}}<dl>
<dt>Instance ID</dt><dd>{{.ID}}</dd>
<dt>Address</dt><dd>{{.Addr}}</dd>
<dt>State</dt><dd>{{.State}}</dd>
<dt>Replication factor</dt><dd>{{.ReplicationFactor}}</dd>
</dl>
<p>The members: <a href="ring">alertmanager ring</a>.</p>
{{else}}<p>Sharding is disabled (-alertmanager.sharding-enabled=false): every tenant runs on this alertmanager.</p>
{{end}}<h2>Tenants</h2>
<p>Tenants with an Alertmanager running here: {{.Tenants}}</p>
</body>
</html>
`))

type statusMember struct{ Name, Addr string }

type statusCluster struct {
	Name, Addr, Status string
	Port               string
	Position           int
	Members            []statusMember
}

type statusRing struct {
	ID, Addr, State   string
	ReplicationFactor int
}

// StatusHandler serves GET /multitenant_alertmanager/status, Cortex's
// status page: this alertmanager's node and the members of Alertmanager's
// gossip cluster (-alertmanager.cluster.*), its instance in the
// alertmanager ring (-alertmanager.sharding-enabled), and the number of
// tenants it runs.
func (am *MultitenantAlertmanager) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var page struct {
			Cluster *statusCluster
			Ring    *statusRing
			Tenants int
		}
		if p := am.peer; p != nil {
			self := p.Self()
			c := &statusCluster{Name: self.Name, Addr: self.Addr.String(), Port: strconv.Itoa(int(self.Port)), Status: p.Status(), Position: p.Position()}
			for _, m := range p.Peers() {
				c.Members = append(c.Members, statusMember{Name: m.Name(), Addr: m.Address()})
			}
			slices.SortFunc(c.Members, func(a, b statusMember) int { return strings.Compare(a.Name, b.Name) })
			page.Cluster = c
		}
		if m := am.member; m != nil {
			page.Ring = &statusRing{ID: m.ID(), Addr: m.Addr(), State: m.State().String(), ReplicationFactor: am.cfg.Sharding.ShardingRing.ReplicationFactor}
		}
		am.mtx.RLock()
		page.Tenants = len(am.tenants)
		am.mtx.RUnlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := statusTemplate.Execute(w, page); err != nil {
			am.logger.Error("rendering the status page failed", "err", err)
		}
	})
}
