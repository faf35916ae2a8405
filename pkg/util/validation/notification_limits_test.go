package validation

import (
	"flag"
	"io"
	"math"
	"strings"
	"testing"

	"golang.org/x/time/rate"
	"gopkg.in/yaml.v3"
)

func TestNotificationRateLimitFlags(t *testing.T) {
	var l Limits
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	l.RegisterFlags(fs)
	if err := fs.Parse([]string{"-alertmanager.notification-rate-limit=5", `-alertmanager.notification-rate-limit-per-integration={"webhook": 0.5, "email": -1}`}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		integration string
		rate        rate.Limit
		burst       int
	}{
		{"webhook", 0.5, 1},
		{"email", 0, 0},
		{"slack", 5, 5},
	} {
		if r, b := l.NotificationRateLimit(c.integration), l.NotificationBurst(c.integration); r != c.rate || b != c.burst {
			t.Errorf("%s: rate %v burst %d, want %v and %d", c.integration, r, b, c.rate, c.burst)
		}
	}
	if r, b := (&Limits{}).NotificationRateLimit("webhook"), (&Limits{}).NotificationBurst("webhook"); r != rate.Inf || b != math.MaxInt32 {
		t.Errorf("no limit: rate %v burst %d", r, b)
	}
	err := fs.Parse([]string{`-alertmanager.notification-rate-limit-per-integration={"carrier-pigeon": 1}`})
	if err == nil || !strings.Contains(err.Error(), `unknown integration name "carrier-pigeon"`) {
		t.Errorf("unknown integration: %v", err)
	}
}

// TestNotificationRateLimitOverridesKeepTheDefaults: a tenant's
// per-integration map adds to the defaults' without changing them.
func TestNotificationRateLimitOverridesKeepTheDefaults(t *testing.T) {
	var defaults Limits
	defaults.RegisterFlags(flag.NewFlagSet("test", flag.ContinueOnError))
	defaults.AlertmanagerNotificationRateLimitPerIntegration = NotificationRateLimitMap{"webhook": 1}
	var raw map[string]yaml.Node
	if err := yaml.Unmarshal([]byte("tenant-a:\n  alertmanager_notification_rate_limit_per_integration:\n    email: 2\n"), &raw); err != nil {
		t.Fatal(err)
	}
	out, err := DecodeOverrides(defaults, raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := out["tenant-a"].AlertmanagerNotificationRateLimitPerIntegration.String(); got != `{"email":2,"webhook":1}` {
		t.Errorf("tenant-a's map: %s", got)
	}
	if got := defaults.AlertmanagerNotificationRateLimitPerIntegration.String(); got != `{"webhook":1}` {
		t.Errorf("the defaults changed: %s", got)
	}
}

// TestCIDRListOverridesReplaceTheDefaults: a tenant's firewall networks
// replace the default list ("" clears it), leaving the defaults as they were.
func TestCIDRListOverridesReplaceTheDefaults(t *testing.T) {
	var defaults Limits
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	defaults.RegisterFlags(fs)
	if err := fs.Parse([]string{"-alertmanager.receivers-firewall-block-cidr-networks=127.0.0.0/8,10.0.0.0/8"}); err != nil {
		t.Fatal(err)
	}
	var raw map[string]yaml.Node
	if err := yaml.Unmarshal([]byte("tenant-a:\n  alertmanager_receivers_firewall_block_cidr_networks: 192.168.0.0/16\ntenant-b:\n  alertmanager_receivers_firewall_block_cidr_networks: \"\"\n"), &raw); err != nil {
		t.Fatal(err)
	}
	out, err := DecodeOverrides(defaults, raw)
	if err != nil {
		t.Fatal(err)
	}
	for tenant, want := range map[string]string{"tenant-a": "192.168.0.0/16", "tenant-b": ""} {
		if got := out[tenant].AlertmanagerReceiversBlockCIDRNetworks.String(); got != want {
			t.Errorf("%s: %q, want %q", tenant, got, want)
		}
	}
	if got := defaults.AlertmanagerReceiversBlockCIDRNetworks.String(); got != "127.0.0.0/8,10.0.0.0/8" {
		t.Errorf("the defaults changed: %q", got)
	}
	var bad CIDRList
	if err := bad.Set("10.0.0.0"); err == nil {
		t.Error("a network without a prefix length is accepted")
	}
}
