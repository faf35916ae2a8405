package cortex

import (
	"flag"
	"fmt"
	"slices"
	"strings"
)

// Flags Cortex renamed or deprecated during 1.x, from its CHANGELOG and
// code: a manifest written for an older Cortex still starts, and the
// process logs a warning naming the flag to use instead (DeprecatedFlags).
//
// The alertmanager's configs link keeps the guide's names
// (-alertmanager.configs.url, -client-timeout, -tls-*) beside Cortex's
// -alertmanager-storage.configs.*: both are current, neither warns, and
// neither is listed here.

// renamedFlags are old name -> new name. The old name sets the new flag;
// given both, the later on the command line wins.
var renamedFlags = [][2]string{
	{"experimental.querier.store-gateway-addresses", "querier.store-gateway-addresses"},
	{"experimental.distributor.user-subring-size", "distributor.ingestion-tenant-shard-size"},
	{"store-gateway.replication-factor", "store-gateway.sharding-ring.replication-factor"},
	{"store-gateway.tokens-file-path", "store-gateway.sharding-ring.tokens-file-path"},
	{"compactor.ring.instance-interface", "compactor.ring.instance-interface-names"},
	{"store-gateway.sharding-ring.instance-interface", "store-gateway.sharding-ring.instance-interface-names"},
	{"distributor.ring.instance-interface", "distributor.ring.instance-interface-names"},
	{"ruler.ring.instance-interface", "ruler.ring.instance-interface-names"},
	{"promql.lookback-delta", "querier.lookback-delta"},
	{"limits.per-user-override-config", "runtime-config.file"},
	{"limits.per-user-override-period", "runtime-config.reload-period"},
	{"store.max-look-back-period", "querier.max-query-lookback"},
	{"store.query-chunk-limit", "querier.max-fetched-chunks-per-query"},
	{"querier.compress-http-responses", "api.response-compression-enabled"},
	{"alertmanager.receivers-firewall.block.cidr-networks", "alertmanager.receivers-firewall-block-cidr-networks"},
	{"alertmanager.receivers-firewall.block.private-addresses", "alertmanager.receivers-firewall-block-private-addresses"},
	{"cluster.listen-address", "alertmanager.cluster.listen-address"},
	{"cluster.advertise-address", "alertmanager.cluster.advertise-address"},
	{"cluster.peer", "alertmanager.cluster.peers"},
	{"cluster.peer-timeout", "alertmanager.cluster.peer-timeout"},
	{"cluster.gossip-interval", "alertmanager.cluster.gossip-interval"},
	{"cluster.push-pull-interval", "alertmanager.cluster.push-pull-interval"},
	{"ruler.client-timeout", "ruler.configs.client-timeout"},
	{"query-scheduler.max-outstanding-requests-per-tenant", "frontend.max-outstanding-requests-per-tenant"},
	{"querier.max-outstanding-requests-per-tenant", "frontend.max-outstanding-requests-per-tenant"},
}

// renamedPrefixes are whole blocks of flags Cortex 1.4 took out of
// "experimental": every flag under the new prefix has an old name.
var renamedPrefixes = [][2]string{
	{"experimental.blocks-storage.", "blocks-storage."},
	{"experimental.store-gateway.", "store-gateway."},
	{"experimental.querier.store-gateway-client.", "querier.store-gateway-client."},
}

// supersededFlags are old names the components register themselves, with
// their own rules for combining with the new one.
var supersededFlags = [][2]string{
	{"ruler.evaluation-delay-duration", "ruler.query-offset"},
	{"blocks-storage.tsdb.max-exemplars", "ingester.max-exemplars"},
}

// noEffectFlags are flags Cortex (1.20 and 1.21) still accepts but ignores, because
// what they switched is always on (or gone) there as here.
var noEffectFlags = [][2]string{
	{"querier.ingester-streaming", "the queriers always stream from the ingesters"},
	{"querier.iterators", "the queriers always use batch iterators"},
	{"querier.batch-iterators", "the queriers always use batch iterators"},
	{"querier.query-store-for-labels-enabled", "label queries always read the long-term store"},
	{"ruler.group-timeout", "it is no longer functional in Cortex"},
	{"ruler.num-workers", "it is no longer functional in Cortex; shard the rulers (-ruler.enable-sharding) for concurrency"},
	{"ruler.alertmanager-use-v2", "the ruler always uses the Alertmanager v2 API"},
	{"frontend.cache-split-interval", "results are cached per -querier.split-queries-by-interval"},
	{"ingester.max-series-per-query", "use -querier.max-fetched-series-per-query"},
}

// deprecatedValue is a deprecated flag: it sets target (nil for a flag
// without effect) and is left out of -help.
type deprecatedValue struct {
	target flag.Value
	isBool bool
}

func (d deprecatedValue) String() string {
	if d.target == nil {
		return ""
	}
	return d.target.String()
}

func (d deprecatedValue) Set(s string) error {
	if d.target == nil {
		return nil
	}
	return d.target.Set(s)
}

func (d deprecatedValue) IsBoolFlag() bool { return d.isBool }

// Deprecated marks the flag for config.Help, which leaves it out.
func (deprecatedValue) Deprecated() bool { return true }

func isBoolFlag(v flag.Value) bool {
	b, ok := v.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// registerDeprecatedFlags registers the old names whose new flag exists
// in f; it runs after every other flag is registered.
func registerDeprecatedFlags(f *flag.FlagSet) {
	alias := func(old, replacement string) {
		to := f.Lookup(replacement)
		if to == nil || f.Lookup(old) != nil {
			return // the feature is not built here, or the name is taken
		}
		f.Var(deprecatedValue{target: to.Value, isBool: isBoolFlag(to.Value)}, old, fmt.Sprintf("Deprecated: use -%s.", replacement))
	}
	for _, r := range renamedFlags {
		alias(r[0], r[1])
	}
	var prefixed [][2]string
	f.VisitAll(func(fl *flag.Flag) {
		for _, p := range renamedPrefixes {
			if rest, ok := strings.CutPrefix(fl.Name, p[1]); ok {
				prefixed = append(prefixed, [2]string{p[0] + rest, fl.Name})
			}
		}
	})
	for _, r := range prefixed {
		alias(r[0], r[1])
	}
	for _, n := range noEffectFlags {
		if f.Lookup(n[0]) == nil {
			// Cortex's values are booleans, numbers or durations: take
			// any, as Cortex does.
			f.Var(deprecatedValue{isBool: strings.HasSuffix(n[0], "streaming") || strings.HasSuffix(n[0], "iterators") || strings.HasSuffix(n[0], "enabled") || strings.HasSuffix(n[0], "use-v2")}, n[0], "Deprecated: no effect; "+n[1]+".")
		}
	}
}

// DeprecatedFlags returns a warning for each deprecated flag set on fs,
// naming the flag to use instead.
func DeprecatedFlags(fs *flag.FlagSet) []string {
	var warnings []string
	fs.Visit(func(f *flag.Flag) {
		for _, r := range slices.Concat(renamedFlags, supersededFlags) {
			if f.Name == r[0] {
				warnings = append(warnings, fmt.Sprintf("flag -%s is deprecated: use -%s", r[0], r[1]))
				return
			}
		}
		for _, p := range renamedPrefixes {
			if rest, ok := strings.CutPrefix(f.Name, p[0]); ok {
				warnings = append(warnings, fmt.Sprintf("flag -%s is deprecated: use -%s%s", f.Name, p[1], rest))
				return
			}
		}
		for _, n := range noEffectFlags {
			if f.Name == n[0] {
				warnings = append(warnings, fmt.Sprintf("flag -%s is deprecated and has no effect: %s", n[0], n[1]))
				return
			}
		}
	})
	return warnings
}
