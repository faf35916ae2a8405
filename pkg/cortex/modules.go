package cortex

import (
	"fmt"
	"slices"
	"strings"

	"github.com/grafana/dskit/modules"
	"github.com/grafana/dskit/services"
)

// Module names: the components -target selects, and the shared pieces they
// depend on.
const (
	TLSReloader   = "tls-reloader"
	Auth          = "auth"
	Server        = "server"
	API           = "api"
	RuntimeConfig = "runtime-config"
	// Overrides is the per-tenant limits every component reads, Cortex's
	// overrides-config module; OverridesAPI is the user overrides API.
	Overrides    = "overrides-config"
	OverridesAPI = "overrides"
	MemberlistKV = "memberlist-kv"
	Ring         = "ring"
	IngesterTLS  = "ingester-client-tls"
	BlocksBucket = "blocks-bucket"
	// StoreGatewayRing is the queriers' client of the store-gateway ring.
	StoreGatewayRing = "store-gateway-ring"
	Ingester         = "ingester"
	Distributor      = "distributor"
	HATracker        = "ha-tracker"
	Querier          = "querier"
	QueryFrontend    = "query-frontend"
	Alertmanager     = "alertmanager"
	Configs          = "configs"
	Compactor        = "compactor"
	StoreGateway     = "store-gateway"
	Ruler            = "ruler"
	All              = "all"
)

// module is one row of the module table.
type module struct {
	name string
	// deps are started before this module and stopped after it.
	deps []string
	// init builds the module's service (nil for a module that only wires
	// things up). It runs after every dependency's init.
	init func(*Cortex) (services.Service, error)
	// target makes the module a -target value of its own.
	target bool
	// inAll makes -target=all run it.
	inAll bool
}

// moduleTable is every module of the process: adding a component is adding
// its row here, its constructor, and its routes in pkg/api. -target
// validation, -target's help text and the start and stop order all come
// from this table.
func moduleTable() []module {
	return []module{
		{name: TLSReloader, init: (*Cortex).initTLSReloader},
		{name: Auth, init: (*Cortex).initAuth},
		{name: Server, deps: []string{TLSReloader, Auth}, init: (*Cortex).initServer},
		{name: API, deps: []string{Server}, init: (*Cortex).initAPI},
		{name: RuntimeConfig, init: (*Cortex).initRuntimeConfig},
		{name: Overrides, deps: []string{RuntimeConfig}, init: (*Cortex).initOverrides},
		{name: MemberlistKV, deps: []string{API}, init: (*Cortex).initMemberlistKV},
		{name: Ring, deps: []string{API, MemberlistKV, RuntimeConfig}, init: (*Cortex).initRing},
		{name: IngesterTLS, deps: []string{TLSReloader}, init: (*Cortex).initIngesterTLS},
		{name: BlocksBucket, deps: []string{TLSReloader}, init: (*Cortex).initBlocksBucket},
		{name: StoreGatewayRing, deps: []string{API, MemberlistKV, RuntimeConfig}, init: (*Cortex).initStoreGatewayRing},

		{name: HATracker, deps: []string{API, Overrides, MemberlistKV}, init: (*Cortex).initHATracker},
		{name: Distributor, deps: []string{API, Overrides, Ring, IngesterTLS, HATracker}, init: (*Cortex).initDistributor, target: true, inAll: true},
		{name: Ingester, deps: []string{API, Overrides, MemberlistKV, BlocksBucket}, init: (*Cortex).initIngester, target: true, inAll: true},
		{name: Flusher, deps: []string{API, Overrides, BlocksBucket}, init: (*Cortex).initFlusher, target: true},
		{name: Querier, deps: []string{API, Overrides, Ring, IngesterTLS, BlocksBucket, StoreGatewayRing}, init: (*Cortex).initQuerier, target: true, inAll: true},
		{name: QueryFrontend, deps: []string{API, Overrides}, init: (*Cortex).initQueryFrontend, target: true, inAll: true},
		{name: Alertmanager, deps: []string{API, MemberlistKV, Overrides}, init: (*Cortex).initAlertmanager, target: true, inAll: true},
		{name: QueryScheduler, deps: []string{API, Overrides}, init: (*Cortex).initQueryScheduler, target: true},
		// Its default database, an SQLite file, needs no other service, so
		// -target=all runs it too.
		{name: Configs, deps: []string{API}, init: (*Cortex).initConfigs, target: true, inAll: true},
		{name: StoreGateway, deps: []string{API, Overrides, MemberlistKV, BlocksBucket}, init: (*Cortex).initStoreGateway, target: true, inAll: true},
		{name: Compactor, deps: []string{API, Overrides, MemberlistKV, BlocksBucket}, init: (*Cortex).initCompactor, target: true, inAll: true},
		{name: Ruler, deps: []string{API, Overrides, Ring, IngesterTLS, BlocksBucket, StoreGatewayRing}, init: (*Cortex).initRuler, target: true, inAll: true},
		{name: OverridesAPI, deps: []string{API, Overrides}, init: (*Cortex).initOverridesAPI, target: true},
		{name: TenantDeletion, deps: []string{API, BlocksBucket}, init: (*Cortex).initTenantDeletionAPI},
		{name: Purger, deps: []string{TenantDeletion}, init: (*Cortex).initPurger, target: true, inAll: true},
	}
}

// targetNames lists the valid -target values, sorted.
func targetNames() []string {
	names := []string{All}
	for _, m := range moduleTable() {
		if m.target {
			names = append(names, m.name)
		}
	}
	slices.Sort(names)
	return names
}

// validateTarget checks every -target value against the table.
func validateTarget(target []string) error {
	valid := targetNames()
	if len(target) == 0 {
		return fmt.Errorf("-target is empty; valid values: %s", strings.Join(valid, ", "))
	}
	for _, name := range target {
		if !slices.Contains(valid, name) {
			return fmt.Errorf("-target=%s: unknown component %q; valid values: %s", strings.Join(target, ","), name, strings.Join(valid, ", "))
		}
	}
	return nil
}

// newModuleManager registers the table with dskit's module manager, which
// initialises dependencies first and stops dependants first.
func (t *Cortex) newModuleManager() (*modules.Manager, error) {
	m := modules.NewManager(t.kitLogger)
	var all []string
	for _, row := range moduleTable() {
		init := func() (services.Service, error) { return row.init(t) }
		if row.target {
			m.RegisterModule(row.name, init)
		} else {
			m.RegisterModule(row.name, init, modules.UserInvisibleModule)
		}
		if row.inAll {
			all = append(all, row.name)
		}
	}
	m.RegisterModule(All, nil)
	for _, row := range moduleTable() {
		if err := m.AddDependency(row.name, row.deps...); err != nil {
			return nil, fmt.Errorf("module table: %w", err)
		}
	}
	if err := m.AddDependency(All, all...); err != nil {
		return nil, fmt.Errorf("module table: %w", err)
	}
	return m, nil
}

// dependencies returns name and every module it depends on, directly or not.
func dependencies(name string) []string {
	table := moduleTable()
	seen := []string{}
	var visit func(string)
	visit = func(n string) {
		if slices.Contains(seen, n) {
			return
		}
		seen = append(seen, n)
		if n == All {
			for _, row := range table {
				if row.inAll {
					visit(row.name)
				}
			}
			return
		}
		for _, row := range table {
			if row.name == n {
				for _, d := range row.deps {
					visit(d)
				}
			}
		}
	}
	visit(name)
	return seen
}

// runs reports whether a -target value of c is, or depends on, one of names.
func (c *Config) runs(names ...string) bool {
	for _, target := range c.Target {
		for _, m := range dependencies(target) {
			if slices.Contains(names, m) {
				return true
			}
		}
	}
	return false
}
