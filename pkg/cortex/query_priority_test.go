package cortex

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestQueryPriorityConfig: limits.query_priority is read from Cortex's
// keys and flags.
func TestQueryPriorityConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cortex.yaml")
	if err := os.WriteFile(file, []byte(`
limits:
  query_priority:
    enabled: true
    default_priority: 3
    priorities:
      - priority: 10
        reserved_queriers: 2
        query_attributes:
          - regex: .*slo.*
            api_type: query
`), 0o600); err != nil {
		t.Fatal(err)
	}
	qp := loadConfig(t, "-config.file="+file).Limits.QueryPriority
	if !qp.Enabled || qp.DefaultPriority != 3 || len(qp.Priorities) != 1 {
		t.Fatalf("query_priority: %+v", qp)
	}
	if p := qp.Priorities[0]; p.Priority != 10 || p.ReservedQueriers != 2 || len(p.QueryAttributes) != 1 ||
		p.QueryAttributes[0].Regex != ".*slo.*" || p.QueryAttributes[0].APIType != "query" {
		t.Fatalf("priority definition: %+v", p)
	}
	cfg := loadConfig(t, "-frontend.query-priority.enabled=true", "-frontend.query-priority.default-priority=7")
	if qp := cfg.Limits.QueryPriority; !qp.Enabled || qp.DefaultPriority != 7 {
		t.Fatalf("-frontend.query-priority.*: %+v", qp)
	}
	if err := cfg.Limits.Validate(); err != nil {
		t.Fatal(err)
	}
}

// The runtime configuration sets a tenant's query priorities over the
// flags' defaults, and refuses a bad one naming the tenant and the field.
func TestQueryPriorityRuntimeConfig(t *testing.T) {
	cfg := loadConfig(t, "-frontend.query-priority.default-priority=2")
	l := newRuntimeConfigLoader(&cfg)
	v, err := l.load(strings.NewReader(`
overrides:
  team-a:
    query_priority:
      enabled: true
      priorities:
        - priority: 9
          reserved_queriers: 0.5
          query_attributes:
            - user_agent_regex: ^grafana
              panel_id: "4"
`))
	if err != nil {
		t.Fatal(err)
	}
	qp := v.(*RuntimeConfigValues).TenantLimits["team-a"].QueryPriority
	if !qp.Enabled || qp.DefaultPriority != 2 || len(qp.Priorities) != 1 || qp.Priorities[0].Priority != 9 || qp.Priorities[0].ReservedQueriers != 0.5 ||
		qp.Priorities[0].QueryAttributes[0].CompiledUserAgentRegex == nil || qp.Priorities[0].QueryAttributes[0].PanelID != "4" {
		t.Fatalf("team-a's query_priority: %+v", qp)
	}
	for _, c := range []struct{ file, want string }{
		{"overrides:\n  team-b:\n    query_priority:\n      priorities:\n        - priority: 1\n          query_attributes:\n            - regex: \"(\"\n",
			`overrides for tenant "team-b": query_priority.priorities[0].query_attributes[0].regex: error parsing regexp: missing closing ): ` + "`(`"},
		{"overrides:\n  team-b:\n    query_priority:\n      priorities:\n        - priority: 1\n          reserved_querier: 1\n",
			"field reserved_querier not found in type validation.PriorityDef"},
	} {
		if _, err := l.load(strings.NewReader(c.file)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("file %q: %v, want %q", c.file, err, c.want)
		}
	}
}
