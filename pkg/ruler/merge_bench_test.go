package ruler

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cortex-tls/cortex/pkg/ruler/rulestore"
)

// BenchmarkRulesAPIMerged measures GET /api/v1/rules for a tenant of 100
// groups of 5 rules (an alert among them) shared by two rulers of a ring:
// the answering ruler lists its own groups and asks the other over gRPC
// with mutual TLS. "local" is one ruler evaluating all 100 groups, asked
// nothing.
func BenchmarkRulesAPIMerged(b *testing.B) {
	var groups []rulestore.RuleGroup
	for i := range 100 {
		var rules strings.Builder
		for j := range 4 {
			fmt.Fprintf(&rules, "- record: g%d:r%d\n  expr: vector(%d)\n", i, j, j)
		}
		rules.WriteString("- alert: A\n  expr: vector(1)\n  labels:\n    severity: page\n")
		groups = append(groups, group(b, "tenant-a", "ns-"+fmt.Sprint(i%10), fmt.Sprintf("name: group-%03d\nrules:\n%s", i, rules.String())))
	}
	for _, n := range []int{1, 2} {
		name := "local"
		if n == 2 {
			name = "two-rulers-mtls"
		}
		b.Run(name, func(b *testing.B) {
			c := newRulerCluster(b, n)
			c.store.set(groups...)
			eventually(b, "100 groups evaluated", func() bool {
				if sum(c.localGroups("tenant-a")) != 100 {
					return false
				}
				code, body := get(b, c.rulers[0].ruler.RulesHandler(), "tenant-a", "/api/v1/rules")
				return code == 200 && !strings.Contains(body, `"lastEvaluation":"0001-01-01T00:00:00Z"`)
			})
			h := c.rulers[0].ruler.RulesHandler()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if code, body := get(b, h, "tenant-a", "/api/v1/rules"); code != 200 {
					b.Fatalf("%d %s", code, body)
				}
			}
		})
	}
}
