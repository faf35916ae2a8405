package ruler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cortex-tls/cortex/pkg/ruler/rulerpb"
)

// Peers are the other rulers a ruler asks for the tenant's groups they
// evaluate, so that GET /api/v1/rules and /api/v1/alerts answer with every
// group of the tenant whichever ruler the request reaches.
type Peers interface {
	// Rules returns the groups of the tenant (in ctx) that the other
	// rulers of its shard evaluate. A ruler that cannot be asked fails the
	// whole call (an *UnavailableError naming it): a partial list would
	// read as groups deleted.
	Rules(ctx context.Context, user string, req *rulerpb.RulesRequest) ([]*RuleGroup, error)
}

// WithPeers makes the ruler's read API ask peers too and merge their
// answers with its own.
func WithPeers(p Peers) Option {
	return func(r *Ruler) { r.peers = p }
}

// UnavailableError is a ruler of the ring that could not be asked; the
// read API answers 503 with it.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string { return e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// listOp selects the rulers asked for a tenant's groups: every ruler that
// may evaluate some, a joining or leaving one included. A ruler of the ring
// without a heartbeat fails the listing.
var listOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE, ring.JOINING, ring.LEAVING}, nil)

// RingPeers are the rulers of the ruler ring (of the tenant's shard with
// shuffle sharding) other than this one, asked over gRPC.
type RingPeers struct {
	ring   ring.ReadRing
	self   string
	shards TenantShards
	pool   *ClientPool
}

// NewRingPeers returns the peers of the ruler advertising self on r.
func NewRingPeers(r ring.ReadRing, self string, shards TenantShards, pool *ClientPool) *RingPeers {
	return &RingPeers{ring: r, self: self, shards: shards, pool: pool}
}

// Rules asks every other ruler of the tenant's shard at once.
func (p *RingPeers) Rules(ctx context.Context, user string, req *rulerpb.RulesRequest) ([]*RuleGroup, error) {
	rs, err := p.shards.Ring(p.ring, user).GetReplicationSetForOperation(listOp)
	if err != nil {
		return nil, &UnavailableError{fmt.Errorf("the ruler ring has rulers without a heartbeat within -ruler.ring.heartbeat-timeout, whose groups cannot be listed: %w", err)}
	}
	var (
		mu   sync.Mutex
		out  []*RuleGroup
		errs []error
		wg   sync.WaitGroup
	)
	for _, inst := range rs.Instances {
		if inst.Addr == p.self {
			continue
		}
		wg.Go(func() {
			groups, err := p.ask(ctx, inst.Addr, req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("ruler %s at %s: %w", inst.Id, inst.Addr, err))
				return
			}
			out = append(out, groups...)
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, &UnavailableError{errors.Join(errs...)}
	}
	return out, nil
}

func (p *RingPeers) ask(ctx context.Context, addr string, req *rulerpb.RulesRequest) ([]*RuleGroup, error) {
	c, err := p.pool.client(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.pool.remoteTimeout)
	defer cancel()
	resp, err := c.Rules(ctx, req)
	if err != nil {
		return nil, err
	}
	return groupsFromProto(resp.GetGroups(), req.GetExcludeAlerts()), nil
}

// rules returns the tenant's groups: this ruler's, merged with its peers'
// when it has any.
func (r *Ruler) rules(ctx context.Context, user string, f RulesFilter) ([]*RuleGroup, error) {
	local := r.LocalRules(user, f)
	if r.peers == nil {
		return local, nil
	}
	remote, err := r.peers.Rules(ctx, user, &rulerpb.RulesRequest{
		RuleNames:      f.RuleNames,
		RuleGroupNames: f.RuleGroups,
		Files:          f.Files,
		Type:           f.Type,
		ExcludeAlerts:  f.ExcludeAlerts,
	})
	if err != nil {
		return nil, err
	}
	return mergeGroups(r.cfg.APIDeduplicateRules, local, remote), nil
}

// alerts returns the tenant's active alerts of every ruler: those of its
// alerting rules.
func (r *Ruler) alerts(ctx context.Context, user string) ([]*Alert, error) {
	if r.peers == nil {
		return r.LocalAlerts(user), nil
	}
	groups, err := r.rules(ctx, user, RulesFilter{Type: "alert"})
	if err != nil {
		return nil, err
	}
	out := []*Alert{}
	for _, g := range groups {
		for _, rule := range g.Rules {
			if a, ok := rule.(AlertingRule); ok {
				out = append(out, a.Alerts...)
			}
		}
	}
	return out, nil
}

// mergeGroups concatenates several rulers' groups in Prometheus' order.
// While the ring changes, two rulers may both evaluate a group for a
// moment: with dedup (-experimental.ruler.api-deduplicate-rules) the one
// evaluated last is kept, otherwise both are listed, as in Cortex.
func mergeGroups(dedup bool, sets ...[]*RuleGroup) []*RuleGroup {
	type key struct{ file, name string }
	seen := map[key]int{}
	out := []*RuleGroup{}
	for _, set := range sets {
		for _, g := range set {
			if !dedup {
				out = append(out, g)
				continue
			}
			k := key{g.File, g.Name}
			if i, ok := seen[k]; ok {
				if g.LastEvaluation.After(out[i].LastEvaluation) {
					out[i] = g
				}
				continue
			}
			seen[k] = len(out)
			out = append(out, g)
		}
	}
	SortRuleGroups(out)
	return out
}

func labelsToProto(ls labels.Labels) []*rulerpb.LabelPair {
	out := make([]*rulerpb.LabelPair, 0, ls.Len())
	ls.Range(func(l labels.Label) { out = append(out, &rulerpb.LabelPair{Name: l.Name, Value: l.Value}) })
	return out
}

func labelsFromProto(in []*rulerpb.LabelPair) labels.Labels {
	b := labels.NewScratchBuilder(len(in))
	for _, l := range in {
		b.Add(l.GetName(), l.GetValue())
	}
	b.Sort()
	return b.Labels()
}

func timeToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func timeFromProto(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

func groupsToProto(groups []*RuleGroup) []*rulerpb.GroupState {
	out := make([]*rulerpb.GroupState, 0, len(groups))
	for _, g := range groups {
		pg := &rulerpb.GroupState{
			Name:              g.Name,
			File:              g.File,
			IntervalSeconds:   g.Interval,
			Limit:             int64(g.Limit),
			EvaluationSeconds: g.EvaluationTime,
			LastEvaluation:    timeToProto(g.LastEvaluation),
		}
		for _, rule := range g.Rules {
			switch rule := rule.(type) {
			case AlertingRule:
				alerts := make([]*rulerpb.Alert, 0, len(rule.Alerts))
				for _, a := range rule.Alerts {
					pa := &rulerpb.Alert{
						Labels:      labelsToProto(a.Labels),
						Annotations: labelsToProto(a.Annotations),
						State:       a.State,
						Value:       a.Value,
					}
					if a.ActiveAt != nil {
						pa.ActiveAt = timestamppb.New(*a.ActiveAt)
					}
					if a.KeepFiringSince != nil {
						pa.KeepFiringSince = timestamppb.New(*a.KeepFiringSince)
					}
					alerts = append(alerts, pa)
				}
				pg.Rules = append(pg.Rules, &rulerpb.RuleState{
					Name:              rule.Name,
					Query:             rule.Query,
					Labels:            labelsToProto(rule.Labels),
					Health:            string(rule.Health),
					LastError:         rule.LastError,
					EvaluationSeconds: rule.EvaluationTime,
					LastEvaluation:    timeToProto(rule.LastEvaluation),
					Alert: &rulerpb.AlertingState{
						State:                rule.State,
						DurationSeconds:      rule.Duration,
						KeepFiringForSeconds: rule.KeepFiringFor,
						Annotations:          labelsToProto(rule.Annotations),
						Alerts:               alerts,
					},
				})
			case RecordingRule:
				pg.Rules = append(pg.Rules, &rulerpb.RuleState{
					Name:              rule.Name,
					Query:             rule.Query,
					Labels:            labelsToProto(rule.Labels),
					Health:            string(rule.Health),
					LastError:         rule.LastError,
					EvaluationSeconds: rule.EvaluationTime,
					LastEvaluation:    timeToProto(rule.LastEvaluation),
				})
			}
		}
		out = append(out, pg)
	}
	return out
}

// groupsFromProto converts groups back; the alerting rules of a request
// with exclude_alerts have no alert list (null in JSON, as Prometheus
// answers), the others a list, empty or not.
func groupsFromProto(in []*rulerpb.GroupState, excludeAlerts bool) []*RuleGroup {
	out := make([]*RuleGroup, 0, len(in))
	for _, pg := range in {
		g := &RuleGroup{
			Name:           pg.GetName(),
			File:           pg.GetFile(),
			Rules:          make([]any, 0, len(pg.GetRules())),
			Interval:       pg.GetIntervalSeconds(),
			Limit:          int(pg.GetLimit()),
			EvaluationTime: pg.GetEvaluationSeconds(),
			LastEvaluation: timeFromProto(pg.GetLastEvaluation()),
		}
		for _, pr := range pg.GetRules() {
			pa := pr.GetAlert()
			if pa == nil {
				g.Rules = append(g.Rules, RecordingRule{
					Name:           pr.GetName(),
					Query:          pr.GetQuery(),
					Labels:         labelsFromProto(pr.GetLabels()),
					Health:         rules.RuleHealth(pr.GetHealth()),
					LastError:      pr.GetLastError(),
					EvaluationTime: pr.GetEvaluationSeconds(),
					LastEvaluation: timeFromProto(pr.GetLastEvaluation()),
					Type:           "recording",
				})
				continue
			}
			var alerts []*Alert
			if !excludeAlerts {
				alerts = make([]*Alert, 0, len(pa.GetAlerts()))
			}
			for _, a := range pa.GetAlerts() {
				al := &Alert{
					Labels:      labelsFromProto(a.GetLabels()),
					Annotations: labelsFromProto(a.GetAnnotations()),
					State:       a.GetState(),
					Value:       a.GetValue(),
				}
				if a.GetActiveAt() != nil {
					t := a.GetActiveAt().AsTime()
					al.ActiveAt = &t
				}
				if a.GetKeepFiringSince() != nil {
					t := a.GetKeepFiringSince().AsTime()
					al.KeepFiringSince = &t
				}
				alerts = append(alerts, al)
			}
			g.Rules = append(g.Rules, AlertingRule{
				State:          pa.GetState(),
				Name:           pr.GetName(),
				Query:          pr.GetQuery(),
				Duration:       pa.GetDurationSeconds(),
				KeepFiringFor:  pa.GetKeepFiringForSeconds(),
				Labels:         labelsFromProto(pr.GetLabels()),
				Annotations:    labelsFromProto(pa.GetAnnotations()),
				Alerts:         alerts,
				Health:         rules.RuleHealth(pr.GetHealth()),
				LastError:      pr.GetLastError(),
				EvaluationTime: pr.GetEvaluationSeconds(),
				LastEvaluation: timeFromProto(pr.GetLastEvaluation()),
				Type:           "alerting",
			})
		}
		out = append(out, g)
	}
	return out
}

// writePeerError answers a read that could not ask every ruler: 503 naming
// the ruler at fault.
func writePeerError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var ue *UnavailableError
	if errors.As(err, &ue) {
		code = http.StatusServiceUnavailable
	}
	writePromError(w, code, "unavailable", fmt.Errorf("listing the tenant's rules of every ruler: %w", err))
}
