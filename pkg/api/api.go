// Package api is the process's HTTP surface: routes.go is the one table of
// every path, its methods, the module that serves it and whether it carries
// a tenant; this file mounts those rows on the server's mux and serves the
// index page.
//
// It holds no handler logic of its own: each row points at a handler of the
// component package that serves it. Components must not register HTTP routes
// anywhere else, so that grep on a path finds its handler in one hop.
package api

import (
	"flag"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"

	"github.com/grafana/regexp"

	"github.com/cortex-tls/cortex/pkg/querier/tenantfederation"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tracing"
)

// Route is one row of the route table.
type Route struct {
	// Module is the module (a -target value, or "server" for the routes
	// every process serves) whose handler answers.
	Module string
	// Methods the path answers; empty means any method.
	Methods []string
	// Path is the URL path, in net/http ServeMux pattern syntax: a trailing
	// slash matches the subtree, {name} one segment.
	Path string
	// Tenant says the request names its tenant in X-Scope-OrgID, which is
	// checked (or, with -auth.enabled=false, set to the default tenant)
	// before the handler runs.
	Tenant bool
	// AllTenants says the route reads or changes every tenant's data:
	// only clients allowed every tenant may call it.
	AllTenants bool
	// Desc is the index page's text for the route; routes without one are
	// not listed there.
	Desc string
	// NotAllowed, when set, is the body of the 405 answer to the methods
	// not in Methods: which method to use and why.
	NotAllowed string
}

// Auth wraps routes with the client identities' rights (pkg/auth).
type Auth struct {
	// Tenant wraps a route that carries a tenant, before it is read.
	Tenant func(http.Handler) http.Handler
	// AllTenants wraps a route that reads or changes every tenant's data.
	AllTenants func(http.Handler) http.Handler
}

// API mounts routes on a mux and remembers them for the index page.
type API struct {
	mux         *http.ServeMux
	authEnabled bool
	target      string
	auth        Auth
	routes      []Route
	// csrf guards the ring pages' "Forget" forms.
	csrf *csrf
	cfg  Config
	cors *regexp.Regexp
}

// New returns an API that mounts its routes on mux. authEnabled is
// -auth.enabled: whether tenant routes require X-Scope-OrgID; target is
// the process's -target, shown on the index page; auth's wrappers, those
// not nil, apply the client identities' rights.
func New(mux *http.ServeMux, authEnabled bool, target string, auth Auth) *API {
	a := &API{mux: mux, authEnabled: authEnabled, target: target, auth: auth, csrf: newCSRF()}
	a.cfg.RegisterFlags(flag.NewFlagSet("defaults", flag.ContinueOnError))
	a.cors, _ = compileCORSOrigin(a.cfg.CORSOrigin)
	mux.HandleFunc("GET /{$}", a.serveIndex)
	return a
}

// Routes returns the mounted routes in the order they were mounted.
func (a *API) Routes() []Route { return slices.Clone(a.routes) }

// route mounts h on every method of r, wrapped in the tenant middleware
// when the route carries a tenant.
func (a *API) route(r Route, h http.Handler) {
	// Inside the tenant middleware, which it reads.
	h = tracing.Route(r.Path, h)
	if r.Tenant {
		if tenantfederation.FederatedPath(r.Path) {
			// Queries may name several tenants (tenant federation).
			h = tenant.MultiTenantHTTPMiddleware(a.authEnabled, h)
		} else {
			h = tenant.HTTPMiddleware(a.authEnabled, h)
		}
		if a.auth.Tenant != nil {
			h = a.auth.Tenant(h)
		}
	}
	if r.AllTenants && a.auth.AllTenants != nil {
		h = a.auth.AllTenants(h)
	}
	h = a.compress(h)
	if len(r.Methods) == 0 {
		a.mux.Handle(r.Path, h)
	} else {
		for _, m := range r.Methods {
			a.mux.Handle(m+" "+r.Path, h)
		}
		if r.NotAllowed != "" {
			// The method-less pattern gets every other method, behind the
			// same rights as an every-tenant route.
			na := methodNotAllowed(r.Methods, r.NotAllowed)
			if r.AllTenants && a.auth.AllTenants != nil {
				na = a.auth.AllTenants(na)
			}
			a.mux.Handle(r.Path, na)
		}
	}
	a.routes = append(a.routes, r)
}

// sameOriginOnly refuses with 403 a request of a method other than GET,
// HEAD or OPTIONS that a browser marks as coming from another site;
// clients other than browsers send no such marks.
func sameOriginOnly(h http.Handler) http.Handler {
	return http.NewCrossOriginProtection().Handler(h)
}

// methodNotAllowed answers 405 with the allowed methods and msg.
func methodNotAllowed(methods []string, msg string) http.Handler {
	allow := strings.Join(methods, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", allow)
		http.Error(w, msg, http.StatusMethodNotAllowed)
	})
}

var indexTemplate = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Cortex</title></head>
<body>
<h1>Cortex</h1>
<p>This process runs -target={{.Target}}.</p>
{{range .Sections}}<h2>{{.Module}}</h2>
<ul>
{{range .Routes}}<li>{{if .Link}}<a href="{{$.PathPrefix}}{{.Path}}">{{.Path}}</a>{{else}}<code>{{.Methods}} {{.Path}}</code>{{end}}: {{.Desc}}{{if .Tenant}} (tenant in X-Scope-OrgID){{end}}{{if .AllTenants}} (every tenant's data){{end}}</li>
{{end}}</ul>
{{end}}</body>
</html>
`))

type indexRoute struct {
	Path, Methods, Desc string
	Link, Tenant        bool
	AllTenants          bool
}

type indexSection struct {
	Module string
	Routes []indexRoute
}

// serveIndex lists the pages of the running modules, as Cortex's index
// page does: links for the pages a browser can open, the API paths as text.
func (a *API) serveIndex(w http.ResponseWriter, r *http.Request) {
	var sections []indexSection
	for _, rt := range a.routes {
		if rt.Desc == "" {
			continue
		}
		i := slices.IndexFunc(sections, func(s indexSection) bool { return s.Module == rt.Module })
		if i < 0 {
			sections = append(sections, indexSection{Module: rt.Module})
			i = len(sections) - 1
		}
		methods := strings.Join(rt.Methods, "|")
		link := !rt.Tenant && !strings.Contains(rt.Path, "{") && (len(rt.Methods) == 0 || slices.Contains(rt.Methods, http.MethodGet))
		sections[i].Routes = append(sections[i].Routes, indexRoute{Path: rt.Path, Methods: methods, Desc: rt.Desc, Link: link, Tenant: rt.Tenant, AllTenants: rt.AllTenants})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := indexTemplate.Execute(w, struct {
		Target     string
		PathPrefix string
		Sections   []indexSection
	}{a.target, strings.TrimRight(a.cfg.ServerPathPrefix, "/"), sections}); err != nil {
		http.Error(w, fmt.Sprintf("rendering the index page: %v", err), http.StatusInternalServerError)
	}
}
