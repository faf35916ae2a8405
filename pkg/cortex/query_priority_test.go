package cortex

import (
	"os"
	"path/filepath"
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
