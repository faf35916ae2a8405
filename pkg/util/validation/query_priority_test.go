package validation

import (
	"flag"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestQueryPriorityValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		defs []PriorityDef
		want string
	}{
		{"duplicate priority", []PriorityDef{{Priority: 5}, {Priority: 1}, {Priority: 5}},
			"query_priority.priorities[2].priority 5: duplicate of query_priority.priorities[0]; each priority must be unique"},
		{"negative reserved queriers", []PriorityDef{{Priority: 1, ReservedQueriers: -1}},
			"query_priority.priorities[0].reserved_queriers must not be negative (a count, or below 1 a fraction of the tenant's queriers), got -1"},
		{"bad regex", []PriorityDef{{Priority: 1}, {Priority: 2, QueryAttributes: []QueryAttribute{{APIType: "query"}, {Regex: "("}}}},
			"query_priority.priorities[1].query_attributes[1].regex: error parsing regexp: missing closing ): `(`"},
		{"bad user agent regex", []PriorityDef{{Priority: 1, QueryAttributes: []QueryAttribute{{UserAgentRegex: "[a"}}}},
			"query_priority.priorities[0].query_attributes[0].user_agent_regex: error parsing regexp: missing closing ]: `[a`"},
		{"bad api type", []PriorityDef{{Priority: 1, QueryAttributes: []QueryAttribute{{APIType: "write"}}}},
			`query_priority.priorities[0].query_attributes[0].api_type "write": want one of query, query_range, series, labels, label_values`},
	} {
		q := QueryPriority{Enabled: true, Priorities: c.defs}
		if err := q.Validate(); err == nil || err.Error() != c.want {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
	q := QueryPriority{Enabled: true, Priorities: []PriorityDef{{Priority: 1, ReservedQueriers: 0.5, QueryAttributes: []QueryAttribute{{Regex: "up", UserAgentRegex: "^grafana"}}}}}
	if err := q.Validate(); err != nil {
		t.Fatal(err)
	}
	if a := q.Priorities[0].QueryAttributes[0]; a.CompiledRegex == nil || a.CompiledUserAgentRegex == nil {
		t.Fatalf("regular expressions not compiled: %+v", a)
	}
}

// The runtime configuration's overrides carry a tenant's priorities, and
// a bad one names the tenant and the field.
func TestQueryPriorityOverrides(t *testing.T) {
	var defaults Limits
	defaults.RegisterFlags(flag.NewFlagSet("limits", flag.PanicOnError))
	decode := func(doc string) (map[string]*Limits, error) {
		var raw map[string]yaml.Node
		if err := yaml.Unmarshal([]byte(doc), &raw); err != nil {
			t.Fatal(err)
		}
		return DecodeOverrides(defaults, raw)
	}
	got, err := decode(`
team-a:
  query_priority:
    enabled: true
    default_priority: 2
    priorities:
      - priority: 10
        reserved_queriers: 0.25
        query_attributes:
          - regex: .*slo.*
            api_type: query_range
            time_window:
              start: 1h
              end: 5m
            user_agent_regex: ^grafana
            dashboard_uid: oncall
            panel_id: "3"
`)
	if err != nil {
		t.Fatal(err)
	}
	qp := got["team-a"].QueryPriority
	if !qp.Enabled || qp.DefaultPriority != 2 || len(qp.Priorities) != 1 {
		t.Fatalf("query_priority: %+v", qp)
	}
	p := qp.Priorities[0]
	a := p.QueryAttributes[0]
	if p.Priority != 10 || p.ReservedQueriers != 0.25 || a.Regex != ".*slo.*" || a.APIType != "query_range" || a.TimeWindow.Start.String() != "1h" ||
		a.TimeWindow.End.String() != "5m" || a.UserAgentRegex != "^grafana" || a.DashboardUID != "oncall" || a.PanelID != "3" || a.CompiledRegex == nil {
		t.Fatalf("priority definition: %+v", p)
	}
	_, err = decode(`
team-b:
  query_priority:
    enabled: true
    priorities:
      - priority: 1
      - priority: 1
`)
	if want := `overrides for tenant "team-b": query_priority.priorities[1].priority 1: duplicate of query_priority.priorities[0]; each priority must be unique`; err == nil || err.Error() != want {
		t.Fatalf("duplicate priority: %v, want %s", err, want)
	}
}
