package ha

import (
	"flag"
	"testing"
	"time"
)

func TestConfigFlags(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("ha", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if c.EnableHATracker || c.UpdateTimeout != 15*time.Second || c.UpdateTimeoutJitterMax != 5*time.Second || c.FailoverTimeout != 30*time.Second || c.KVStore.Store != "consul" || c.KVStore.Prefix != "ha-tracker/" {
		t.Fatalf("defaults: %+v", c)
	}
	if err := fs.Parse([]string{
		"-distributor.ha-tracker.enable",
		"-distributor.ha-tracker.store=memberlist",
		"-distributor.ha-tracker.update-timeout=1s",
		"-distributor.ha-tracker.update-timeout-jitter-max=0s",
		"-distributor.ha-tracker.failover-timeout=2s",
		"-distributor.ha-tracker.etcd.tls-ca-path=/etc/ca.crt",
	}); err != nil {
		t.Fatal(err)
	}
	if !c.EnableHATracker || c.KVStore.Store != "memberlist" || c.FailoverTimeout != 2*time.Second || c.KVStore.Etcd.TLS.CAPath != "/etc/ca.crt" {
		t.Fatalf("parsed: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
