package api

import "net/http"

// RegisterDistributorRing mounts the distributor ring's status page, served
// where the distributors join it (the global ingestion rate strategy).
func (a *API) RegisterDistributorRing(ring http.Handler) {
	ring = a.csrf.protect(ring)
	a.route(Route{Module: "distributor", Path: "/distributor/ring", AllTenants: true, Desc: "Distributor ring status"}, ring)
}
