package api

import "net/http"

// RegisterRulerRing mounts the ruler ring's status page
// (-ruler.enable-sharding), as Cortex's /ruler/ring.
func (a *API) RegisterRulerRing(ring http.Handler) {
	ring = a.csrf.protect(ring)
	a.route(Route{Module: "ruler", Path: "/ruler/ring", AllTenants: true, Desc: "Ruler ring status"}, ring)
	a.route(Route{Module: "ruler", Path: "/ruler_ring", AllTenants: true}, ring) // Cortex's legacy path
}
