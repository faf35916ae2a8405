package promqlcheck

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

func TestDepth(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want int
	}{
		{`up`, 0},
		{`up{job="a"}`, 1},
		{`up{job!="a", instance=~"x|y", pod!~"z"}`, 1}, // matchers are no operators
		{`sum(rate(up[5m]))`, 3},
		{`((up))`, 2},
		{`- - -up`, 3},
		{`up + up * up`, 2},
		{`up == bool up >= 1 != 2`, 3},
		{`up and up or up unless up`, 3},
		{`up AND up Or up`, 2}, // keywords in any case
		{`up atan2 up`, 1},
		{`up{job="((((((("}`, 1},              // strings do not count
		{`up{job='a\'((('}`, 1},               // escaped quotes stay in the string
		{"up{job=`a\\`} + up", 2},             // raw strings have no escapes
		{"up # ((((((\n+ up", 1},              // comments do not count
		{`(up + up) + (up + up)`, 3},          // siblings do not add up
		{`max_over_time((up + 1)[5m:1m])`, 4}, // ( ( + ) [ ]
		{`sum by (and, or) (up)`, 3},          // an overcount: an upper bound
		{`))) + up`, 1},                       // unbalanced: the parser refuses it
		{strings.Repeat("(", 1000) + "up" + strings.Repeat(")", 1000), 1000},
		{"up" + strings.Repeat(" + up", 1000), 1000},
	} {
		if got := Depth(tc.expr); got != tc.want {
			t.Errorf("Depth(%.60q) = %d, want %d", tc.expr, got, tc.want)
		}
	}
}

// Depth bounds the depth of the tree the parser builds.
func TestDepthBoundsParseTree(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for _, expr := range []string{
		`sum by (job) (rate(http_requests_total{job="api", code=~"5.."}[5m])) / on (job) group_left sum by (job) (rate(http_requests_total[5m]))`,
		`histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m]))) > bool 0.5 and on () vector(1)`,
		`-(-(-(up))) ^ 2 ^ 3`,
		`max_over_time((up - 1)[10m:1m] offset -5m)`,
		`label_replace(up, "dst", "$1", "src", "(.*)")`,
		strings.Repeat("abs(", 50) + "up" + strings.Repeat(")", 50),
		"up" + strings.Repeat(" * up", 50),
		"1" + strings.Repeat(" ^ 2", 50),
	} {
		e, err := p.ParseExpr(expr)
		if err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		if tree, scan := treeDepth(e), Depth(expr); tree > scan {
			t.Errorf("%.60q: tree %d levels deep, scan says %d", expr, tree, scan)
		}
	}
}

func treeDepth(n parser.Node) int {
	d := 0
	for _, c := range parser.Children(n) {
		d = max(d, treeDepth(c))
	}
	if _, ok := n.(*parser.VectorSelector); ok {
		return d
	}
	if _, ok := n.(*parser.NumberLiteral); ok {
		return d
	}
	if _, ok := n.(*parser.StringLiteral); ok {
		return d
	}
	if _, ok := n.(parser.Expressions); ok {
		return d
	}
	return d + 1
}

func TestCheck(t *testing.T) {
	if err := Check("query", "up + up", 7, 1); err != nil {
		t.Fatalf("at both limits: %v", err)
	}
	err := Check("query", "up + up", 6, 1)
	var long *TooLongError
	if !errors.As(err, &long) || err.Error() != "the query expression is 7 bytes long, over the limit of 6 bytes (-query-frontend.max-query-expression-size-bytes)" {
		t.Fatalf("too long: %v", err)
	}
	err = Check("match[]", "up + (up)", 0, 1)
	var deep *TooDeepError
	if !errors.As(err, &deep) || err.Error() != "the match[] expression nests deeper than the limit of 1 levels at byte 5 (-query-frontend.max-query-expression-depth): every bracket, unary operator and binary operator in a chain adds a level" {
		t.Fatalf("too deep: %v", err)
	}
	if err := Check("query", strings.Repeat("(", 5000)+"up"+strings.Repeat(")", 5000), 0, 0); err != nil {
		t.Fatalf("no limits: %v", err)
	}
}

var deepShapes = []struct {
	name string
	expr func(n int) string
}{
	{"parentheses", func(n int) string { return strings.Repeat("(", n) + "up" + strings.Repeat(")", n) }},
	{"unary", func(n int) string { return strings.Repeat("-", n) + "up" }},
	{"binary", func(n int) string { return "up" + strings.Repeat(" + up", n) }},
}

// BenchmarkRefuse20000Deep is the cost of refusing the 20,000-deep
// expressions under the default limits.
func BenchmarkRefuse20000Deep(b *testing.B) {
	for _, s := range deepShapes {
		expr := s.expr(20000)
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(len(expr)))
			for b.Loop() {
				if Check("query", expr, 128<<10, 256) == nil {
					b.Fatal("not refused")
				}
			}
		})
	}
}

// BenchmarkParse is what the parser spends on the same shapes: at the
// default depth limit, and at 20,000 levels.
func BenchmarkParse(b *testing.B) {
	p := parser.NewParser(parser.Options{})
	for _, s := range deepShapes {
		for _, n := range []int{256, 20000} {
			expr := s.expr(n)
			b.Run(s.name+"/"+strconv.Itoa(n), func(b *testing.B) {
				for b.Loop() {
					if _, err := p.ParseExpr(expr); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkParseLargestAccepted parses the costliest shapes the default
// limits accept: 128 KiB of expression, nesting at most 256 levels.
func BenchmarkParseLargestAccepted(b *testing.B) {
	p := parser.NewParser(parser.Options{})
	unit := "(" + strings.Repeat("(", 254) + "up" + strings.Repeat(")", 254) + ")"
	for _, c := range []struct{ name, expr string }{
		{"nested-groups", fill("sum(", unit, ", ", ")")},
		{"selectors", fill(`count({__name__="up"`, `, l="0123456789"`, "", "})")},
		{"binary-256", "up" + strings.Repeat(" + up", 255)},
	} {
		if err := Check("query", c.expr, 128<<10, 256); err != nil {
			b.Fatalf("%s: %v", c.name, err)
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				_, _ = p.ParseExpr(c.expr)
			}
		})
	}
}

// fill repeats unit (separated by sep) between head and tail up to 128 KiB.
func fill(head, unit, sep, tail string) string {
	var sb strings.Builder
	sb.WriteString(head)
	for sb.Len()+len(unit)+len(sep)+len(tail) <= 128<<10 {
		if sb.Len() > len(head) {
			sb.WriteString(sep)
		}
		sb.WriteString(unit)
	}
	sb.WriteString(tail)
	return sb.String()
}
