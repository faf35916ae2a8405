package ruler

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
)

// lockedBuffer is a log sink written by the rule groups' goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRulerQueryStats: with -ruler.query-stats-enabled, each rule query is
// logged with its rule and group and its wall time counted per tenant in
// cortex_ruler_query_seconds_total; without, neither.
func TestRulerQueryStats(t *testing.T) {
	for _, enabled := range []bool{true, false} {
		dbs := newTenantDBs(t)
		dbs.add("tenant-a", time.Now().Add(-10*time.Second), 1, labels.FromStrings("__name__", "up", "job", "api", "instance", "1"))
		store := &memStore{}
		store.set(group(t, "tenant-a", "team-1", tenantARules))
		reg := prometheus.NewRegistry()
		logs := &lockedBuffer{}
		args := []string{}
		if enabled {
			args = append(args, "-ruler.query-stats-enabled=true")
		}
		testRuler(t, testConfig(t, args...), store, dbs, nil, logs, reg)
		eventually(t, "two rule queries", func() bool {
			return counter(t, reg, "cortex_ruler_queries_total", map[string]string{"user": "tenant-a"}) >= 2
		})
		seconds := counter(t, reg, "cortex_ruler_query_seconds_total", map[string]string{"user": "tenant-a"})
		logged := logs.String()
		if !enabled {
			if seconds > 0 || strings.Contains(logged, "query stats") {
				t.Fatalf("without -ruler.query-stats-enabled: %v seconds counted, logs %q", seconds, logged)
			}
			continue
		}
		if seconds <= 0 {
			t.Fatalf("cortex_ruler_query_seconds_total{user=tenant-a} = %v", seconds)
		}
		for _, want := range []string{`msg="query stats"`, "component=ruler", "user=tenant-a", "rule_group=availability", "namespace=team-1", "rule=job:up:sum", "rule_kind=recording", `query="sum by (job) (up)"`, "query_wall_time_seconds="} {
			if !strings.Contains(logged, want) {
				t.Errorf("the query stats log lacks %s: %.600s", want, logged)
			}
		}
	}
}
