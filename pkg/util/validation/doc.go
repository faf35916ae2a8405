// Package validation holds the per-tenant limits: defaults from flags,
// overrides per tenant from the runtime configuration file, which is
// reloaded without a restart.
//
// It also holds the checks of a series' labels (ValidateLabels), shared by
// the distributor and the ingester so both paths refuse the same series.
//
// It must not import component packages, and it holds limits only, never
// per-tenant usage: each component counts its own series and samples.
package validation
