package configs

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/cortex-tls/cortex/pkg/configs/db"
)

// Rules using Prometheus' experimental functions are accepted with the
// queriers' -querier.enable-promql-experimental-functions, and refused with
// Prometheus' parse error without it.
func TestRulesWithExperimentalFunctions(t *testing.T) {
	rules := strings.Replace(validRules, "up == 0", "limitk(1, up) == 0", 1)
	for _, enabled := range []bool{false, true} {
		d, err := db.Open(context.Background(), "file:"+t.TempDir()+"/c.db", slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		c := client{t: t, h: NewAPI(d, slog.New(slog.DiscardHandler), WithParserOptions(parser.Options{EnableExperimentalFunctions: enabled})).Handler(true)}
		code, body := c.do("POST", "/api/prom/configs/rules", "a", jsonBody(t, RulesConfig{RulesFiles: map[string]string{"r.yaml": rules}, RuleFormatVersion: "2"}))
		if enabled && code != http.StatusNoContent {
			t.Fatalf("with experimental functions: %d %s", code, body)
		}
		if want := `invalid rules file "r.yaml": 5:11: group "g", rule 1, "Down": could not parse expression: 1:1: parse error: limitk() is experimental and must be enabled with --enable-feature=promql-experimental-functions`; !enabled && (code != http.StatusBadRequest || strings.TrimSpace(body) != want) {
			t.Fatalf("without experimental functions: %d %s\nwant 400 %s", code, body, want)
		}
	}
}
