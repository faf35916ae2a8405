// Package tenantfilter decides which tenants a component handles, from
// Cortex's -<component>.enabled-tenants and -<component>.disabled-tenants
// lists (Cortex's util.AllowedTenants).
package tenantfilter

// globalMarkersDir is the bucket's reserved folder of global markers: no
// tenant may be named after it.
const globalMarkersDir = "__markers__"

// Allowed answers whether a tenant is handled. The nil *Allowed allows
// every tenant.
type Allowed struct {
	enabled  map[string]struct{} // empty: every tenant
	disabled map[string]struct{}
}

// New returns the filter of the two lists: with enabled tenants, only those
// are handled; a disabled tenant is never handled, enabled or not.
func New(enabled, disabled []string) *Allowed {
	a := &Allowed{}
	if len(enabled) > 0 {
		a.enabled = make(map[string]struct{}, len(enabled))
		for _, t := range enabled {
			a.enabled[t] = struct{}{}
		}
	}
	if len(disabled) > 0 {
		a.disabled = make(map[string]struct{}, len(disabled))
		for _, t := range disabled {
			a.disabled[t] = struct{}{}
		}
	}
	return a
}

// IsAllowed reports whether tenant is handled.
func (a *Allowed) IsAllowed(tenant string) bool {
	if tenant == globalMarkersDir {
		return false
	}
	if a == nil {
		return true
	}
	if len(a.enabled) > 0 {
		if _, ok := a.enabled[tenant]; !ok {
			return false
		}
	}
	_, disabled := a.disabled[tenant]
	return !disabled
}
