package validation

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"golang.org/x/time/rate"
	"gopkg.in/yaml.v3"
)

// NotificationIntegrations are the integration names a per-integration
// notification rate limit may name: Cortex's, and the integrations
// Alertmanager added since (incidentio, mattermost).
var NotificationIntegrations = []string{
	"webhook", "email", "pagerduty", "opsgenie", "wechat", "slack", "victorops", "pushover", "sns", "telegram", "discord", "webex",
	"msteams", "msteamsv2", "jira", "rocketchat", "incidentio", "mattermost",
}

// NotificationRateLimitMap is -alertmanager.notification-rate-limit-per-integration:
// notifications per second by integration name, JSON on the command line.
// A tenant's map in the runtime configuration adds to (and replaces keys
// of) the default map, as in Cortex.
type NotificationRateLimitMap map[string]float64

// String gives the map as JSON: {} when empty, as in Cortex.
func (m NotificationRateLimitMap) String() string {
	if len(m) == 0 {
		return "{}"
	}
	b, err := json.Marshal(map[string]float64(m))
	if err != nil {
		return fmt.Sprintf("unprintable: %v", err)
	}
	return string(b)
}

// Set reads a JSON object of integration names to rates.
func (m *NotificationRateLimitMap) Set(s string) error {
	in := map[string]float64{}
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return fmt.Errorf("want a JSON object of integration names to notifications per second: %w", err)
	}
	return m.merge(in)
}

// UnmarshalYAML reads a mapping of integration names to rates into a new
// map, so that a tenant's overrides never change the defaults' map.
func (m *NotificationRateLimitMap) UnmarshalYAML(n *yaml.Node) error {
	in := map[string]float64{}
	if err := n.Decode(&in); err != nil {
		return err
	}
	return m.merge(in)
}

// MarshalYAML gives the map as a YAML mapping.
func (m NotificationRateLimitMap) MarshalYAML() (any, error) { return map[string]float64(m), nil }

func (m *NotificationRateLimitMap) merge(in map[string]float64) error {
	out := maps.Clone(*m)
	if out == nil {
		out = NotificationRateLimitMap{}
	}
	for _, name := range slices.Sorted(maps.Keys(in)) {
		if !slices.Contains(NotificationIntegrations, name) {
			return fmt.Errorf("unknown integration name %q (known: %s)", name, strings.Join(NotificationIntegrations, ", "))
		}
		out[name] = in[name]
	}
	*m = out
	return nil
}

// NotificationRateLimit is the tenant's rate of notifications per second
// for integration: its per-integration limit if it has one, else
// -alertmanager.notification-rate-limit. 0 (or +Inf) is no limit; a
// negative rate allows no notification at all.
func (l *Limits) NotificationRateLimit(integration string) rate.Limit {
	v, ok := l.AlertmanagerNotificationRateLimitPerIntegration[integration]
	if !ok {
		v = l.AlertmanagerNotificationRateLimit
	}
	switch {
	case v == 0 || math.IsInf(v, 1):
		return rate.Inf
	case v < 0:
		return 0
	}
	return rate.Limit(v)
}

// NotificationBurst is the burst of the tenant's rate limit for
// integration: the rate, at least 1, as in Cortex (0 when nothing may be
// sent).
func (l *Limits) NotificationBurst(integration string) int {
	r := l.NotificationRateLimit(integration)
	switch {
	case r == 0:
		return 0
	case float64(r) >= math.MaxInt32:
		return math.MaxInt32
	case r < 1:
		return 1
	}
	return int(r)
}
