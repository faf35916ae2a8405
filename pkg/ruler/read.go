package ruler

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// The types below are Prometheus' web/api/v1 rule and alert types, field
// for field and in the same order, so that /prometheus/api/v1/rules and
// /prometheus/api/v1/alerts answer exactly as Prometheus does.

// RuleGroup is one group in GET /api/v1/rules.
type RuleGroup struct {
	Name string `json:"name"`
	// File is the group's namespace.
	File           string    `json:"file"`
	Rules          []any     `json:"rules"`
	Interval       float64   `json:"interval"`
	Limit          int       `json:"limit"`
	EvaluationTime float64   `json:"evaluationTime"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

// AlertingRule is an alerting rule in GET /api/v1/rules.
type AlertingRule struct {
	State          string           `json:"state"`
	Name           string           `json:"name"`
	Query          string           `json:"query"`
	Duration       float64          `json:"duration"`
	KeepFiringFor  float64          `json:"keepFiringFor"`
	Labels         labels.Labels    `json:"labels"`
	Annotations    labels.Labels    `json:"annotations"`
	Alerts         []*Alert         `json:"alerts"`
	Health         rules.RuleHealth `json:"health"`
	LastError      string           `json:"lastError,omitempty"`
	EvaluationTime float64          `json:"evaluationTime"`
	LastEvaluation time.Time        `json:"lastEvaluation"`
	Type           string           `json:"type"`
}

// RecordingRule is a recording rule in GET /api/v1/rules.
type RecordingRule struct {
	Name           string           `json:"name"`
	Query          string           `json:"query"`
	Labels         labels.Labels    `json:"labels"`
	Health         rules.RuleHealth `json:"health"`
	LastError      string           `json:"lastError,omitempty"`
	EvaluationTime float64          `json:"evaluationTime"`
	LastEvaluation time.Time        `json:"lastEvaluation"`
	Type           string           `json:"type"`
}

// Alert is an active alert in GET /api/v1/alerts and in its rule.
type Alert struct {
	Labels          labels.Labels `json:"labels"`
	Annotations     labels.Labels `json:"annotations"`
	State           string        `json:"state"`
	ActiveAt        *time.Time    `json:"activeAt,omitempty"`
	KeepFiringSince *time.Time    `json:"keepFiringSince,omitempty"`
	Value           string        `json:"value"`
}

// RulesFilter selects rules as GET /api/v1/rules' parameters do; empty
// fields select everything.
type RulesFilter struct {
	// Type is "", "alert" or "record".
	Type          string
	RuleNames     []string
	RuleGroups    []string
	Files         []string
	ExcludeAlerts bool
}

// ParseRulesFilter reads the parameters of GET /api/v1/rules: type,
// rule_name[], rule_group[], file[] and exclude_alerts.
func ParseRulesFilter(r *http.Request) (RulesFilter, error) {
	if err := r.ParseForm(); err != nil {
		return RulesFilter{}, fmt.Errorf("error parsing form values: %w", err)
	}
	f := RulesFilter{
		Type:       strings.ToLower(r.Form.Get("type")),
		RuleNames:  r.Form["rule_name[]"],
		RuleGroups: r.Form["rule_group[]"],
		Files:      r.Form["file[]"],
	}
	if f.Type != "" && f.Type != "alert" && f.Type != "record" {
		return RulesFilter{}, fmt.Errorf("invalid parameter \"type\": not supported value %q", f.Type)
	}
	if s := r.Form.Get("exclude_alerts"); s != "" {
		v, err := strconv.ParseBool(strings.ToLower(s))
		if err != nil {
			return RulesFilter{}, fmt.Errorf("invalid parameter \"exclude_alerts\": error converting exclude_alerts: %w", err)
		}
		f.ExcludeAlerts = v
	}
	return f, nil
}

// LocalRules returns the tenant's groups this ruler evaluates, filtered, in
// Prometheus' order (namespace, then group name). Groups left with no rule
// after filtering are left out, as Prometheus does. Several rulers'
// answers merge by concatenating them and sorting again (SortRuleGroups).
func (r *Ruler) LocalRules(user string, f RulesFilter) []*RuleGroup {
	tm := r.tenant(user)
	if tm == nil {
		return []*RuleGroup{}
	}
	out := []*RuleGroup{}
	for _, g := range tm.manager.RuleGroups() {
		if len(f.RuleGroups) > 0 && !slices.Contains(f.RuleGroups, g.Name()) {
			continue
		}
		if len(f.Files) > 0 && !slices.Contains(f.Files, g.File()) {
			continue
		}
		rg := &RuleGroup{
			Name:           g.Name(),
			File:           g.File(),
			Rules:          []any{},
			Interval:       g.Interval().Seconds(),
			Limit:          g.Limit(),
			EvaluationTime: g.GetEvaluationTime().Seconds(),
			LastEvaluation: g.GetLastEvaluation(),
		}
		for _, rule := range g.Rules() {
			if len(f.RuleNames) > 0 && !slices.Contains(f.RuleNames, rule.Name()) {
				continue
			}
			lastError := ""
			if err := rule.LastError(); err != nil {
				lastError = err.Error()
			}
			switch rule := rule.(type) {
			case *rules.AlertingRule:
				if f.Type == "record" {
					continue
				}
				var alerts []*Alert
				if !f.ExcludeAlerts {
					alerts = apiAlerts(rule.ActiveAlerts())
				}
				rg.Rules = append(rg.Rules, AlertingRule{
					State:          rule.State().String(),
					Name:           rule.Name(),
					Query:          rule.Query().String(),
					Duration:       rule.HoldDuration().Seconds(),
					KeepFiringFor:  rule.KeepFiringFor().Seconds(),
					Labels:         rule.Labels(),
					Annotations:    rule.Annotations(),
					Alerts:         alerts,
					Health:         rule.Health(),
					LastError:      lastError,
					EvaluationTime: rule.GetEvaluationDuration().Seconds(),
					LastEvaluation: rule.GetEvaluationTimestamp(),
					Type:           "alerting",
				})
			case *rules.RecordingRule:
				if f.Type == "alert" {
					continue
				}
				rg.Rules = append(rg.Rules, RecordingRule{
					Name:           rule.Name(),
					Query:          rule.Query().String(),
					Labels:         rule.Labels(),
					Health:         rule.Health(),
					LastError:      lastError,
					EvaluationTime: rule.GetEvaluationDuration().Seconds(),
					LastEvaluation: rule.GetEvaluationTimestamp(),
					Type:           "recording",
				})
			}
		}
		if len(rg.Rules) > 0 {
			out = append(out, rg)
		}
	}
	return out
}

// SortRuleGroups orders groups as Prometheus does: by file, then name.
func SortRuleGroups(groups []*RuleGroup) {
	slices.SortFunc(groups, func(a, b *RuleGroup) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// LocalAlerts returns the tenant's active alerts of the rules this ruler
// evaluates.
func (r *Ruler) LocalAlerts(user string) []*Alert {
	out := []*Alert{}
	tm := r.tenant(user)
	if tm == nil {
		return out
	}
	for _, rule := range tm.manager.AlertingRules() {
		out = append(out, apiAlerts(rule.ActiveAlerts())...)
	}
	return out
}

func apiAlerts(in []*rules.Alert) []*Alert {
	out := make([]*Alert, len(in))
	for i, a := range in {
		out[i] = &Alert{
			Labels:      a.Labels,
			Annotations: a.Annotations,
			State:       a.State.String(),
			ActiveAt:    &a.ActiveAt,
			Value:       strconv.FormatFloat(a.Value, 'e', -1, 64),
		}
		if !a.KeepFiringSince.IsZero() {
			out[i].KeepFiringSince = &a.KeepFiringSince
		}
	}
	return out
}

// promResponse is Prometheus' API envelope.
type promResponse struct {
	Status    string `json:"status"`
	Data      any    `json:"data,omitempty"`
	ErrorType string `json:"errorType,omitempty"`
	Error     string `json:"error,omitempty"`
}

func writePromJSON(w http.ResponseWriter, code int, v promResponse) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func writePromError(w http.ResponseWriter, code int, errorType string, err error) {
	writePromJSON(w, code, promResponse{Status: "error", ErrorType: errorType, Error: err.Error()})
}

// RulesHandler serves Prometheus' GET /api/v1/rules for the request's
// tenant: {"status":"success","data":{"groups":[...]}}, an empty list when
// the tenant has no rule.
func (r *Ruler) RulesHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, err := tenant.ID(req.Context())
		if err != nil {
			writePromError(w, http.StatusUnauthorized, "bad_data", err)
			return
		}
		f, err := ParseRulesFilter(req)
		if err != nil {
			writePromError(w, http.StatusBadRequest, "bad_data", err)
			return
		}
		groups, err := r.rules(req.Context(), user, f)
		if err != nil {
			writePeerError(w, err)
			return
		}
		writePromJSON(w, http.StatusOK, promResponse{Status: "success", Data: struct {
			Groups []*RuleGroup `json:"groups"`
		}{groups}})
	})
}

// AlertsHandler serves Prometheus' GET /api/v1/alerts for the request's
// tenant.
func (r *Ruler) AlertsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, err := tenant.ID(req.Context())
		if err != nil {
			writePromError(w, http.StatusUnauthorized, "bad_data", err)
			return
		}
		alerts, err := r.alerts(req.Context(), user)
		if err != nil {
			writePeerError(w, err)
			return
		}
		writePromJSON(w, http.StatusOK, promResponse{Status: "success", Data: struct {
			Alerts []*Alert `json:"alerts"`
		}{alerts}})
	})
}
