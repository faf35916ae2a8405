package api

import "net/http"

// RegisterAlertmanagerRing mounts the alertmanager ring's status page at
// Cortex's path.
func (a *API) RegisterAlertmanagerRing(ring http.Handler) {
	ring = a.csrf.protect(ring)
	a.route(Route{Module: "alertmanager", Path: "/multitenant_alertmanager/ring", AllTenants: true, Desc: "Alertmanager ring status"}, ring)
}
