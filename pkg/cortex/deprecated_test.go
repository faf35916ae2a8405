package cortex

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/cortex-tls/cortex/pkg/util/config"
)

func loadWithFlagSet(t *testing.T, args ...string) (Config, *flag.FlagSet) {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := config.Load(fs, args, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg, fs
}

func TestRenamedFlagsSetTheNewOneWithAWarning(t *testing.T) {
	cfg, fs := loadWithFlagSet(t,
		"-store-gateway.replication-factor=5",
		"-experimental.blocks-storage.tsdb.dir=/data/tsdb",
		"-limits.per-user-override-config=/etc/cortex/runtime.yaml",
		"-experimental.distributor.user-subring-size=4",
		"-ruler.evaluation-delay-duration=1m",
		"-querier.ingester-streaming=true",
		"-ruler.num-workers=8",
	)
	if got := cfg.StoreGateway.ShardingRing.ReplicationFactor; got != 5 {
		t.Errorf("-store-gateway.replication-factor=5 gave -store-gateway.sharding-ring.replication-factor=%d", got)
	}
	if got := cfg.BlocksStorage.TSDB.Dir; got != "/data/tsdb" {
		t.Errorf("-experimental.blocks-storage.tsdb.dir gave -blocks-storage.tsdb.dir=%q", got)
	}
	if got := cfg.RuntimeConfig.LoadPath.String(); got != "/etc/cortex/runtime.yaml" {
		t.Errorf("-limits.per-user-override-config gave -runtime-config.file=%q", got)
	}
	if got := cfg.Limits.IngestionTenantShardSize; got != 4 {
		t.Errorf("-experimental.distributor.user-subring-size=4 gave %d", got)
	}
	got := DeprecatedFlags(fs)
	slices.Sort(got)
	want := []string{
		"flag -experimental.blocks-storage.tsdb.dir is deprecated: use -blocks-storage.tsdb.dir",
		"flag -experimental.distributor.user-subring-size is deprecated: use -distributor.ingestion-tenant-shard-size",
		"flag -limits.per-user-override-config is deprecated: use -runtime-config.file",
		"flag -querier.ingester-streaming is deprecated and has no effect: the queriers always stream from the ingesters",
		"flag -ruler.evaluation-delay-duration is deprecated: use -ruler.query-offset",
		"flag -ruler.num-workers is deprecated and has no effect: it is no longer functional in Cortex; shard the rulers (-ruler.enable-sharding) for concurrency",
		"flag -store-gateway.replication-factor is deprecated: use -store-gateway.sharding-ring.replication-factor",
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The guide's names of the alertmanager's configs link are current names
// beside Cortex's -alertmanager-storage.configs.*: no warning.
func TestGuideAlertmanagerConfigsFlagsDoNotWarn(t *testing.T) {
	_, fs := loadWithFlagSet(t,
		"-alertmanager.configs.url=https://configs:8443",
		"-alertmanager.configs.client-timeout=3s",
		"-alertmanager.configs.tls-cert-path=/c.pem",
		"-alertmanager.configs.tls-key-path=/k.pem",
		"-alertmanager.configs.tls-ca-path=/ca.pem",
	)
	if w := DeprecatedFlags(fs); len(w) != 0 {
		t.Errorf("warnings for the guide's flags: %q", w)
	}
}

func TestEveryRenamedFlagWhoseNewNameExistsIsAccepted(t *testing.T) {
	_, fs := loadWithFlagSet(t)
	aliases := 0
	for _, r := range slices.Concat(renamedFlags, supersededFlags) {
		if fs.Lookup(r[1]) == nil {
			continue
		}
		if fs.Lookup(r[0]) == nil {
			t.Errorf("-%s (renamed -%s) is not accepted", r[0], r[1])
		}
		aliases++
	}
	fs.VisitAll(func(f *flag.Flag) {
		for _, p := range renamedPrefixes {
			if rest, ok := strings.CutPrefix(f.Name, p[1]); ok {
				if fs.Lookup(p[0]+rest) == nil {
					t.Errorf("-%s%s is not accepted for -%s", p[0], rest, f.Name)
				}
				aliases++
			}
		}
	})
	for _, n := range noEffectFlags {
		if fs.Lookup(n[0]) == nil {
			t.Errorf("-%s is not accepted", n[0])
		}
	}
	if aliases < 100 {
		t.Errorf("only %d renamed flags accepted", aliases)
	}
	t.Logf("%d renamed flags and %d flags without effect accepted", aliases, len(noEffectFlags))
}
