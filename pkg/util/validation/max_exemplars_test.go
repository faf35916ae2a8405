package validation

import (
	"flag"
	"io"
	"testing"
)

// Cortex's older flag -blocks-storage.tsdb.max-exemplars sets the same
// per-tenant limit as -ingester.max-exemplars.
func TestMaxExemplarsFlagNames(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 100000},
		{[]string{"-ingester.max-exemplars=5"}, 5},
		{[]string{"-blocks-storage.tsdb.max-exemplars=7"}, 7},
		{[]string{"-blocks-storage.tsdb.max-exemplars=0"}, 0},
	} {
		var l Limits
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		l.RegisterFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if l.MaxExemplars != tc.want {
			t.Errorf("%v: max exemplars %d, want %d", tc.args, l.MaxExemplars, tc.want)
		}
	}
}
