package ruler

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// BenchmarkParseRuleGroup measures the validation of a posted group of 20
// rules (10 recording, 10 alerting with labels and annotations), the work
// of one POST /api/v1/rules/{namespace} before the store write.
func BenchmarkParseRuleGroup(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("name: bench\ninterval: 30s\nrules:\n")
	for i := range 10 {
		fmt.Fprintf(&sb, "- record: job:http_requests:rate5m_%d\n  expr: sum by (job) (rate(http_requests_total{code=~\"5..\",instance=~\"host-%d.*\"}[5m]))\n", i, i)
		fmt.Fprintf(&sb, "- alert: HighErrorRate%d\n  expr: job:http_requests:rate5m_%d / ignoring(code) group_left sum by (job) (rate(http_requests_total[5m])) > 0.05\n  for: 10m\n  labels:\n    severity: page\n  annotations:\n    summary: '{{ $labels.job }} errors at {{ $value | humanizePercentage }}'\n", i, i)
	}
	body := []byte(sb.String())
	p := parser.NewParser(parser.Options{})
	limits := &validation.Limits{MaxQueryExpressionSizeBytes: 128 << 10, MaxQueryExpressionDepth: 256}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		rg, err := ParseRuleGroup(body, p, limits)
		if err != nil || len(rg.Rules) != 20 {
			b.Fatalf("%d rules, %v", len(rg.Rules), err)
		}
	}
}
