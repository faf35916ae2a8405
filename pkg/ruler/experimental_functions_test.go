package ruler

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// TestExperimentalFunctionsInRules: a rule using one of Prometheus'
// experimental functions loads and evaluates with the querier's
// -querier.enable-promql-experimental-functions, and is left out, with
// Prometheus' parse error, without it.
func TestExperimentalFunctionsInRules(t *testing.T) {
	const body = "name: sorted\nrules:\n  - record: limited\n    expr: limitk(1, vector(1))\n"
	run := func(t *testing.T, enabled bool) (*Ruler, *syncBuffer) {
		store := &memStore{}
		store.set(group(t, "tenant-a", "team-1", body))
		logs := &syncBuffer{}
		opts := parser.Options{EnableExperimentalFunctions: enabled}
		reg := prometheus.NewRegistry()
		engine := NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute, Parser: parser.NewParser(opts)}, reg)
		dbs := newTenantDBs(t)
		r, err := New(testConfig(t), store, dbs, dbs, engine, nil, slog.New(slog.NewTextHandler(logs, nil)), reg, WithParserOptions(opts))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.StartAsync(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			r.StopAsync()
			_ = r.AwaitTerminated(context.Background())
		})
		if err := r.AwaitRunning(context.Background()); err != nil {
			t.Fatal(err)
		}
		return r, logs
	}

	t.Run("enabled", func(t *testing.T) {
		r, _ := run(t, true)
		eventually(t, "the group to evaluate", func() bool {
			g := r.LocalRules("tenant-a", RulesFilter{})
			if len(g) != 1 || len(g[0].Rules) != 1 {
				return false
			}
			rule, ok := g[0].Rules[0].(RecordingRule)
			return ok && rule.Health == "ok" && rule.LastError == ""
		})
	})
	t.Run("disabled", func(t *testing.T) {
		r, logs := run(t, false)
		want := `group=sorted err="rule 1 (limited): expr \"limitk(1, vector(1))\": 1:1: parse error: limitk() is experimental and must be enabled with --enable-feature=promql-experimental-functions"`
		eventually(t, "the group to be left out", func() bool { return strings.Contains(logs.String(), want) })
		if g := r.LocalRules("tenant-a", RulesFilter{}); len(g) != 0 {
			t.Fatalf("running %d groups, want none", len(g))
		}
	})
}
