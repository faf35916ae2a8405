package cortex

import (
	"flag"
	"testing"
	"time"
)

// Where dskit's default differs from Cortex's, the flag has Cortex's, in
// the config and in -help; a flag still overrides it.
func TestCortexDefaults(t *testing.T) {
	var cfg Config
	f := flag.NewFlagSet("cortex", flag.ContinueOnError)
	cfg.RegisterFlags(f)
	if cfg.MemberlistKV.LeaveTimeout != 5*time.Second {
		t.Fatalf("-memberlist.leave-timeout default %s, Cortex's is 5s", cfg.MemberlistKV.LeaveTimeout)
	}
	if got := f.Lookup("memberlist.leave-timeout").DefValue; got != "5s" {
		t.Fatalf("-help shows -memberlist.leave-timeout default %q, want 5s", got)
	}
	if err := f.Parse([]string{"-memberlist.leave-timeout=20s"}); err != nil {
		t.Fatal(err)
	}
	if cfg.MemberlistKV.LeaveTimeout != 20*time.Second {
		t.Fatalf("-memberlist.leave-timeout=20s gave %s", cfg.MemberlistKV.LeaveTimeout)
	}
}
