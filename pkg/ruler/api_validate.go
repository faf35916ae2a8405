package ruler

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/cortex-tls/cortex/pkg/util/promqlcheck"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// Fields a posted group and its rules may have: the YAML keys of
// Prometheus' rulefmt.RuleGroup and rulefmt.Rule.
var (
	ruleGroupYAMLFields = yamlFieldNames(reflect.TypeFor[rulefmt.RuleGroup]())
	ruleYAMLFields      = yamlFieldNames(reflect.TypeFor[rulefmt.Rule]())
)

func yamlFieldNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// ParseRuleGroup decodes and validates one rule group (the body of POST
// /api/v1/rules/{namespace}, YAML or JSON) as Prometheus loads a rule file:
// rulefmt's checks with the querier's PromQL parser p, plus the refusal of
// unknown fields and of duplicate rules (two recording rules writing the same
// series, or two identical alerting rules). With limits, an expression over
// the tenant's -query-frontend.max-query-expression-size-bytes or
// -query-frontend.max-query-expression-depth is refused before it is parsed,
// as a query would be. Errors name the group, the rule (its 1-based position
// and name) and the line and column in the body, as rulefmt's do.
func ParseRuleGroup(body []byte, p parser.Parser, limits *validation.Limits) (rulefmt.RuleGroup, error) {
	var rg rulefmt.RuleGroup
	dec := yaml.NewDecoder(bytes.NewReader(body))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return rg, fmt.Errorf("unable to decode rule group: %w", err)
	}
	var second yaml.Node
	if err := dec.Decode(&second); !errors.Is(err, io.EOF) {
		return rg, errors.New("unable to decode rule group: the body holds more than one YAML document; post one rule group per request")
	}
	var ruleNodes []*yaml.Node
	if len(doc.Content) > 0 {
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			return rg, fmt.Errorf("unable to decode rule group: %d:%d: want a mapping with name, interval and rules, got %s", root.Line, root.Column, yamlKindName(root))
		}
		var err error
		if ruleNodes, err = decodeRuleGroupFields(root, &rg); err != nil {
			return rg, err
		}
	}

	// Cortex's checks and texts, then Prometheus' on each rule.
	if rg.Name == "" {
		return rg, errors.New("invalid rules config: rule group name must not be empty")
	}
	if len(ruleNodes) == 0 {
		return rg, fmt.Errorf("invalid rules config: rule group '%s' has no rules", rg.Name)
	}
	var errs []error
	rg.Rules = make([]rulefmt.Rule, len(ruleNodes))
	for i, n := range ruleNodes {
		if err := decodeRuleNode(rg.Name, i, n, &rg.Rules[i], p, limits); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		errs = duplicateRuleErrors(rg, ruleNodes)
	}
	if len(errs) > 0 {
		return rg, joinRuleGroupErrors(errs)
	}

	// The group as the rulers will load it from the store must pass
	// rulefmt.Parse, which also checks the group's own labels.
	out, err := yaml.Marshal(rulefmt.RuleGroups{Groups: []rulefmt.RuleGroup{rg}})
	if err != nil {
		return rg, fmt.Errorf("unable to encode rule group %q: %w", rg.Name, err)
	}
	if _, errs := rulefmt.Parse(out, false, model.UTF8Validation, p, slog.New(slog.DiscardHandler)); len(errs) > 0 {
		return rg, fmt.Errorf("invalid rules config: group %q: %w", rg.Name, joinRuleGroupErrors(errs))
	}
	return rg, nil
}

// decodeRuleGroupFields decodes the group's own fields into rg, each on its own
// so that an error names the field and its line, and returns the rules'
// nodes.
func decodeRuleGroupFields(root *yaml.Node, rg *rulefmt.RuleGroup) ([]*yaml.Node, error) {
	var rules []*yaml.Node
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if line, ok := seen[k.Value]; ok {
			return nil, fmt.Errorf("unable to decode rule group: %d:%d: field %q given twice, first at line %d", k.Line, k.Column, k.Value, line)
		}
		seen[k.Value] = k.Line
		switch {
		case k.Value == "groups":
			return nil, fmt.Errorf("unable to decode rule group: %d:%d: the body is a rule file (a list of groups): post each group on its own, as a mapping with name, interval and rules", k.Line, k.Column)
		case k.Value == "source_tenants":
			// Cortex's federated rule groups, which this ruler does not
			// evaluate; Grafana's rule editor may send the field empty.
			var tenants []string
			if err := v.Decode(&tenants); err != nil || len(tenants) > 0 {
				return nil, fmt.Errorf("unable to decode rule group: %d:%d: field source_tenants: federated rule groups (rules over other tenants' data) are not supported; remove source_tenants", v.Line, v.Column)
			}
		case !slices.Contains(ruleGroupYAMLFields, k.Value):
			return nil, fmt.Errorf("unable to decode rule group: %d:%d: field %q not found in a rule group (fields: %s)", k.Line, k.Column, k.Value, strings.Join(ruleGroupYAMLFields, ", "))
		case k.Value == "rules":
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				continue
			}
			if v.Kind != yaml.SequenceNode {
				return nil, fmt.Errorf("unable to decode rule group: %d:%d: field rules: want a list of rules, got %s", v.Line, v.Column, yamlKindName(v))
			}
			rules = v.Content
		default:
			if err := decodeYAMLField(k, v, rg); err != nil {
				return nil, fmt.Errorf("unable to decode rule group: %d:%d: %w", v.Line, v.Column, err)
			}
		}
	}
	return rules, nil
}

// decodeRuleNode decodes rule i of group into r and runs Prometheus' checks on
// it, naming the rule in the error.
func decodeRuleNode(group string, i int, n *yaml.Node, r *rulefmt.Rule, p parser.Parser, limits *validation.Limits) error {
	name := ruleNodeName(n)
	ruleErr := func(line, col int, format string, args ...any) error {
		return fmt.Errorf("%d:%d: group %q, rule %d, %q: %s", line, col, group, i+1, name, fmt.Sprintf(format, args...))
	}
	if n.Kind != yaml.MappingNode {
		return ruleErr(n.Line, n.Column, "want a mapping with record or alert, and expr, got %s", yamlKindName(n))
	}
	seen := map[string]int{}
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j], n.Content[j+1]
		if line, ok := seen[k.Value]; ok {
			return ruleErr(k.Line, k.Column, "field %q given twice, first at line %d", k.Value, line)
		}
		seen[k.Value] = k.Line
		if !slices.Contains(ruleYAMLFields, k.Value) {
			return ruleErr(k.Line, k.Column, "field %q not found in a rule (fields: %s)", k.Value, strings.Join(ruleYAMLFields, ", "))
		}
		if err := decodeYAMLField(k, v, &rulefmt.Rule{}); err != nil {
			return ruleErr(v.Line, v.Column, "%v", err)
		}
	}
	var node rulefmt.RuleNode
	if err := n.Decode(r); err != nil {
		return ruleErr(n.Line, n.Column, "%v", err)
	}
	if err := n.Decode(&node); err != nil {
		return ruleErr(n.Line, n.Column, "%v", err)
	}
	if limits != nil {
		if err := promqlcheck.Check("rule", r.Expr, limits.MaxQueryExpressionSizeBytes, limits.MaxQueryExpressionDepth); err != nil {
			return ruleErr(node.Expr.Line, node.Expr.Column, "%v", err)
		}
	}
	var errs []error
	for _, we := range r.Validate(node, model.UTF8Validation, p) {
		errs = append(errs, &rulefmt.Error{Group: group, Rule: i + 1, RuleName: name, Err: we})
	}
	return errors.Join(errs...)
}

// decodeYAMLField decodes one key and its value into out, so that a bad value
// (a duration that does not parse, a list where a map belongs) is named
// with its field.
func decodeYAMLField(k, v *yaml.Node, out any) error {
	one := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{k, v}}
	if err := one.Decode(out); err != nil {
		msg := err.Error()
		var te *yaml.TypeError
		if errors.As(err, &te) {
			msg = strings.Join(te.Errors, "; ")
		}
		return fmt.Errorf("field %s: %s", k.Value, msg)
	}
	return nil
}

// duplicateRuleErrors refuses two recording rules that write the same series
// (same name and labels: their samples would collide) and two alerting rules
// alike in name, expression and labels (the same alert twice). Alerting
// rules that share a name with different labels or expressions, such as a
// warning and a critical threshold, are usual and accepted.
func duplicateRuleErrors(rg rulefmt.RuleGroup, nodes []*yaml.Node) []error {
	var errs []error
	for i, r := range rg.Rules {
		for j, o := range rg.Rules[:i] {
			var why string
			switch {
			case r.Record != "" && r.Record == o.Record && maps.Equal(r.Labels, o.Labels):
				why = "both record the same series (same name and labels)"
			case r.Alert != "" && r.Alert == o.Alert && r.Expr == o.Expr && maps.Equal(r.Labels, o.Labels):
				why = "the same alert (same name, expression and labels)"
			default:
				continue
			}
			n := nodes[i]
			errs = append(errs, fmt.Errorf("%d:%d: group %q, rule %d, %q: duplicate of rule %d: %s", n.Line, n.Column, rg.Name, i+1, ruleNodeName(n), j+1, why))
			break
		}
	}
	return errs
}

// ruleNodeName is the rule's record or alert name, for error messages.
func ruleNodeName(n *yaml.Node) string {
	var record, alert string
	for j := 0; j+1 < len(n.Content); j += 2 {
		switch n.Content[j].Value {
		case "record":
			record = n.Content[j+1].Value
		case "alert":
			alert = n.Content[j+1].Value
		}
	}
	if alert != "" {
		return alert
	}
	return record
}

func yamlKindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an alias"
}

// joinRuleGroupErrors joins errors into one line per error, without wrapping them.
func joinRuleGroupErrors(errs []error) error {
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	return errors.New(strings.Join(msgs, "\n"))
}
