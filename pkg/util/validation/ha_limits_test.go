package validation

import (
	"flag"
	"strings"
	"testing"
)

func TestHALimitsFlagsAndValidation(t *testing.T) {
	var l Limits
	fs := flag.NewFlagSet("limits", flag.ContinueOnError)
	l.RegisterFlags(fs)
	if l.AcceptHASamples || l.HAClusterLabel != "cluster" || l.HAReplicaLabel != "__replica__" || l.HAMaxClusters != 0 {
		t.Fatalf("defaults: %+v", l)
	}
	if err := fs.Parse([]string{"-distributor.ha-tracker.enable-for-all-users", "-distributor.ha-tracker.max-clusters=3", "-distributor.ha-tracker.cluster=prom_cluster"}); err != nil {
		t.Fatal(err)
	}
	if !l.AcceptHASamples || l.HAMaxClusters != 3 || l.HAClusterLabel != "prom_cluster" {
		t.Fatalf("parsed: %+v", l)
	}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}

	same := l
	same.HAReplicaLabel = "prom_cluster"
	err := same.Validate()
	if err == nil || !strings.Contains(err.Error(), `accept_ha_samples needs two different labels in ha_cluster_label and ha_replica_label (-distributor.ha-tracker.cluster, -distributor.ha-tracker.replica), got "prom_cluster" and "prom_cluster"`) {
		t.Fatalf("same label twice: %v", err)
	}
	neg := l
	neg.HAMaxClusters = -1
	if err := neg.Validate(); err == nil || err.Error() != "-distributor.ha-tracker.max-clusters (ha_max_clusters) must not be negative (0 means unlimited), got -1" {
		t.Fatalf("negative max clusters: %v", err)
	}
}
