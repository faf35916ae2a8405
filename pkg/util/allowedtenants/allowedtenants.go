// Package allowedtenants is Cortex's per-component tenant filter: the
// -<component>.enabled-tenants and -<component>.disabled-tenants lists.
package allowedtenants

import "slices"

// Filter answers whether a component handles a tenant. The zero value and
// nil allow every tenant.
type Filter struct {
	// enabled, when not empty, is the only tenants allowed.
	enabled map[string]struct{}
	// disabled are refused even when enabled lists them.
	disabled map[string]struct{}
}

// New returns the filter of the enabled and disabled lists: with enabled
// tenants, only those are allowed; a disabled tenant is never allowed.
func New(enabled, disabled []string) *Filter {
	f := &Filter{}
	if len(enabled) > 0 {
		f.enabled = make(map[string]struct{}, len(enabled))
		for _, t := range enabled {
			f.enabled[t] = struct{}{}
		}
	}
	if len(disabled) > 0 {
		f.disabled = make(map[string]struct{}, len(disabled))
		for _, t := range disabled {
			f.disabled[t] = struct{}{}
		}
	}
	return f
}

// IsAllowed reports whether the component handles tenant.
func (f *Filter) IsAllowed(tenant string) bool {
	if f == nil {
		return true
	}
	if f.enabled != nil {
		if _, ok := f.enabled[tenant]; !ok {
			return false
		}
	}
	_, disabled := f.disabled[tenant]
	return !disabled
}

// Restricted reports whether the filter refuses any tenant.
func (f *Filter) Restricted() bool {
	return f != nil && (f.enabled != nil || f.disabled != nil)
}

// Enabled and Disabled return the lists, sorted, for logging.
func (f *Filter) Enabled() []string  { return sortedKeys(f.enabled) }
func (f *Filter) Disabled() []string { return sortedKeys(f.disabled) }

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
