package validation

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func TestCompactorRetentionOverriddenPerTenant(t *testing.T) {
	var defaults Limits
	defaults.RegisterFlags(flag.NewFlagSet("limits", flag.PanicOnError))
	if err := defaults.CompactorBlocksRetentionPeriod.Set("30d"); err != nil {
		t.Fatal(err)
	}
	rc, err := Loader(defaults)(strings.NewReader("overrides:\n  short:\n    compactor_blocks_retention_period: 1d\n"))
	if err != nil {
		t.Fatal(err)
	}
	o := NewOverrides(defaults, func() map[string]*Limits { return rc.(*RuntimeConfig).Overrides })
	if got := time.Duration(o.For("short").CompactorBlocksRetentionPeriod); got != 24*time.Hour {
		t.Errorf("overridden tenant: %s, want 24h", got)
	}
	if got := time.Duration(o.For("other").CompactorBlocksRetentionPeriod); got != 30*24*time.Hour {
		t.Errorf("tenant on the default: %s, want 720h", got)
	}
}
