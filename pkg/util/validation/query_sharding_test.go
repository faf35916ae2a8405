package validation

import (
	"flag"
	"strings"
	"testing"
)

// TestQueryVerticalShardSize: -frontend.query-vertical-shard-size defaults
// to 0 (off), is set per tenant by query_vertical_shard_size, and is
// refused outside [0, 128] with the flag and key named.
func TestQueryVerticalShardSize(t *testing.T) {
	var defaults Limits
	fs := flag.NewFlagSet("limits", flag.PanicOnError)
	defaults.RegisterFlags(fs)
	if defaults.QueryVerticalShardSize != 0 {
		t.Fatalf("default %d, want 0", defaults.QueryVerticalShardSize)
	}
	if err := fs.Parse([]string{"-frontend.query-vertical-shard-size=2"}); err != nil {
		t.Fatal(err)
	}
	rc, err := Loader(defaults)(strings.NewReader("overrides:\n  big:\n    query_vertical_shard_size: 8\n"))
	if err != nil {
		t.Fatal(err)
	}
	o := NewOverrides(defaults, func() map[string]*Limits { return rc.(*RuntimeConfig).Overrides })
	if got := o.For("big").QueryVerticalShardSize; got != 8 {
		t.Errorf("overridden tenant: %d, want 8", got)
	}
	if got := o.For("other").QueryVerticalShardSize; got != 2 {
		t.Errorf("tenant on the default: %d, want 2", got)
	}
	for _, n := range []int{-1, 129} {
		l := defaults
		l.QueryVerticalShardSize = n
		want := "-frontend.query-vertical-shard-size (query_vertical_shard_size) must be between 0 and 128, got " + map[int]string{-1: "-1", 129: "129"}[n]
		if err := l.Validate(); err == nil || err.Error() != want {
			t.Errorf("%d: %v, want %q", n, err, want)
		}
	}
}
