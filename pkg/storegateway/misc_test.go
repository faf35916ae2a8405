package storegateway

import (
	"flag"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/thanos-io/objstore"
)

func flagSet(cfg *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	return fs
}

func objstorRecursive() objstore.IterOption { return objstore.WithRecursiveIter() }

// histogramCount is the number of observations of a histogram without labels.
func histogramCount(t testing.TB, g prometheus.Gatherer, name string) uint64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("no histogram %s", name)
	return 0
}
