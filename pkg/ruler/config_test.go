package ruler

import (
	"strings"
	"testing"
	"time"
)

func TestAlertmanagerURLs(t *testing.T) {
	cfg := testConfig(t, "-ruler.alertmanager-url=https://am-1:9093, https://user:pw@am-2:9093/am/,dnssrv+https://_web._tcp.am.example/alertmanager,dns+http://am-3.example:9093")
	targets, err := cfg.alertmanagers()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range targets {
		got = append(got, a.lookup+" "+a.url.String()+" "+a.username+":"+a.password)
	}
	want := []string{
		" https://am-1:9093/alertmanager :",
		" https://am-2:9093/am user:pw",
		"SRV https://_web._tcp.am.example/alertmanager :",
		"A http://am-3.example:9093/alertmanager :",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("targets:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The notifier's configuration: one group per entry, DNS for the last two.
	promCfg, sd := notifierConfig(&cfg, targets)
	if n := len(promCfg.AlertingConfig.AlertmanagerConfigs); n != 4 || len(sd) != 4 {
		t.Fatalf("%d Alertmanager configs, %d discovery configs, want 4 and 4", n, len(sd))
	}
	if c := promCfg.AlertingConfig.AlertmanagerConfigs[1]; c.PathPrefix != "/am" || c.Scheme != "https" || time.Duration(c.Timeout) != 10*time.Second {
		t.Errorf("second Alertmanager config: path %q, scheme %q, timeout %s", c.PathPrefix, c.Scheme, time.Duration(c.Timeout))
	}
}

func TestConfigErrorsNameTheFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-ruler.alertmanager-url=ftp://am:21"}, `-ruler.alertmanager-url: "ftp://am:21": want http(s)://host:port[/path]`},
		{[]string{"-ruler.alertmanager-url=dns+https://am.example"}, `-ruler.alertmanager-url: "dns+https://am.example": dns+ needs a port`},
		{[]string{"-ruler.alertmanager-url=dnssrv+https://am.example"}, `a DNS SRV name must look like _portname._tcp.service.fqdn`},
		{[]string{"-ruler.alertmanager-discovery", "-ruler.alertmanager-url=https://am.example:9093"}, `a DNS SRV name must look like _portname._tcp.service.fqdn`},
		{[]string{"-ruler.alertmanager-url=http://am:9093", "-ruler.alertmanager-client.tls-ca-path=ca.pem"}, `-ruler.alertmanager-url: "http://am:9093" is plain HTTP but -ruler.alertmanager-client.tls-* flags are set: use https://`},
		{[]string{"-ruler.alertmanager-use-v2=false"}, `-ruler.alertmanager-use-v2=false: Alertmanager and Prometheus' notifier only speak the v2 API`},
		{[]string{"-ruler.evaluation-interval=0s"}, `-ruler.evaluation-interval must be positive`},
		{[]string{"-ruler.query-offset=-1m"}, `-ruler.query-offset must not be negative`},
		{[]string{"-ruler.notification-queue-capacity=0"}, `-ruler.notification-queue-capacity must be positive`},
		{[]string{"-ruler.external.url=grafana"}, `-ruler.external.url="grafana": want http(s)://`},
	} {
		cfg := testConfig(t, c.args...)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want it to contain %q", c.args, err, c.want)
		}
	}
}

func TestDeprecatedEvaluationDelayIsTheQueryOffset(t *testing.T) {
	cfg := testConfig(t, "-ruler.evaluation-delay-duration=2m")
	if got := cfg.queryOffset(); got != 2*time.Minute {
		t.Errorf("-ruler.evaluation-delay-duration=2m gives query offset %s", got)
	}
	cfg = testConfig(t, "-ruler.evaluation-delay-duration=2m", "-ruler.query-offset=30s")
	if got := cfg.queryOffset(); got != 30*time.Second {
		t.Errorf("-ruler.query-offset=30s with the deprecated flag gives %s, want 30s", got)
	}
	cfg = testConfig(t)
	if cfg.NotificationQueueCapacity != 10000 || cfg.NotificationTimeout != 10*time.Second || cfg.OutageTolerance != time.Hour || cfg.ForGracePeriod != 10*time.Minute {
		t.Errorf("defaults differ from Cortex's: %+v", cfg)
	}
}
