// Package querysharding is the series side of vertical query sharding:
// the shard a query-frontend's shard query reads, carried to the querier as
// a matcher on the reserved label __CORTEX_SHARDS__ in each of the query's
// selectors (as Cortex does), and the filter that keeps a shard's series.
//
// A shard holds the series whose grouping labels hash to it (Thanos'
// storepb.ShardInfo): with By the hash of the named labels, otherwise of
// every label but those named and the metric name. Every series that one
// output group of the query reads then lands in the same shard, so the
// shard queries' answers are disjoint and joining them is the answer.
//
// It depends on Prometheus' labels and storage only: the query-frontend
// (which holds no series), the querier, the ingesters and the
// store-gateways all use it, and it must not import any of them.
package querysharding

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// LabelName is the reserved label whose matcher carries a shard, with
// Cortex's name. No stored series has it.
const LabelName = "__CORTEX_SHARDS__"

// MaxShards bounds TotalShards in a matcher the querier accepts.
const MaxShards = 1024

// ShardInfo is one shard of a query, with the field names of Thanos'
// storepb.ShardInfo in its JSON.
type ShardInfo struct {
	ShardIndex  int64    `json:"shard_index"`
	TotalShards int64    `json:"total_shards"`
	By          bool     `json:"by"`
	Labels      []string `json:"labels"`
}

// Matcher returns the matcher that carries s in a selector.
func (s ShardInfo) Matcher() *labels.Matcher {
	b, _ := json.Marshal(s)
	return labels.MustNewMatcher(labels.MatchEqual, LabelName, string(b))
}

// Validate checks a shard read from a request.
func (s ShardInfo) Validate() error {
	if s.TotalShards < 1 || s.TotalShards > MaxShards {
		return fmt.Errorf("%s: total_shards must be between 1 and %d, got %d", LabelName, MaxShards, s.TotalShards)
	}
	if s.ShardIndex < 0 || s.ShardIndex >= s.TotalShards {
		return fmt.Errorf("%s: shard_index must be between 0 and total_shards-1 (%d), got %d", LabelName, s.TotalShards-1, s.ShardIndex)
	}
	if s.By && len(s.Labels) == 0 {
		return fmt.Errorf("%s: a shard by labels needs at least one label", LabelName)
	}
	return nil
}

// Parse reads the value of a shard matcher.
func Parse(value string) (*ShardInfo, error) {
	var s ShardInfo
	if err := json.Unmarshal([]byte(value), &s); err != nil {
		return nil, fmt.Errorf("%s: reading the shard %q: %w", LabelName, value, err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Extract takes the shard matcher out of matchers. It returns a nil shard
// and matchers unchanged when there is none, and an error for a malformed
// one or for two that differ.
func Extract(matchers []*labels.Matcher) (*ShardInfo, []*labels.Matcher, error) {
	i := slices.IndexFunc(matchers, func(m *labels.Matcher) bool { return m.Name == LabelName })
	if i < 0 {
		return nil, matchers, nil
	}
	var (
		shard *ShardInfo
		value string
		rest  = make([]*labels.Matcher, 0, len(matchers)-1)
	)
	for _, m := range matchers {
		if m.Name != LabelName {
			rest = append(rest, m)
			continue
		}
		if m.Type != labels.MatchEqual {
			return nil, nil, fmt.Errorf("%s: only = matches a shard, got %s", LabelName, m)
		}
		if shard != nil {
			if m.Value != value {
				return nil, nil, fmt.Errorf("%s: a selector names two different shards", LabelName)
			}
			continue
		}
		s, err := Parse(m.Value)
		if err != nil {
			return nil, nil, err
		}
		shard, value = s, m.Value
	}
	return shard, rest, nil
}

// Filter tells whether series belong to one shard. It is not safe for
// concurrent use: it reuses a buffer.
type Filter struct {
	index, total uint64
	by           bool
	names        []string
	buf          []byte
}

// NewFilter returns the filter of shard s.
func NewFilter(s ShardInfo) *Filter {
	names := slices.Clone(s.Labels)
	// labels' HashForLabels and HashWithoutLabels need names in order.
	slices.Sort(names)
	names = slices.Compact(names)
	return &Filter{index: uint64(s.ShardIndex), total: uint64(s.TotalShards), by: s.By, names: names, buf: make([]byte, 0, 1024)}
}

// Matches tells whether the series lset is in the filter's shard.
func (f *Filter) Matches(lset labels.Labels) bool {
	var h uint64
	if f.by {
		h, f.buf = lset.HashForLabels(f.buf, f.names...)
	} else {
		h, f.buf = lset.HashWithoutLabels(f.buf, f.names...)
	}
	return h%f.total == f.index
}

type shardKey struct{}

// ContextWith returns ctx carrying shard, for sources that can keep only
// its series where they read them (the ingesters, the store-gateways).
func ContextWith(ctx context.Context, shard *ShardInfo) context.Context {
	return context.WithValue(ctx, shardKey{}, shard)
}

// FromContext returns the shard ctx carries, or nil.
func FromContext(ctx context.Context) *ShardInfo {
	s, _ := ctx.Value(shardKey{}).(*ShardInfo)
	return s
}

// Queryable serves shard queries over a queryable: a Select carrying a
// shard matcher reads the other matchers' series, the shard in its context,
// and keeps those of the shard.
type Queryable struct {
	storage.Queryable
}

// Querier implements storage.Queryable.
func (q Queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	inner, err := q.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return querier{inner}, nil
}

type querier struct {
	storage.Querier
}

func (q querier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	shard, rest, err := Extract(matchers)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	if shard == nil {
		return q.Querier.Select(ctx, sortSeries, hints, matchers...)
	}
	set := q.Querier.Select(ContextWith(ctx, shard), sortSeries, hints, rest...)
	return &filteredSet{SeriesSet: set, filter: NewFilter(*shard)}
}

// LabelValues ignores a shard matcher: shards split queries, not label
// lookups.
func (q querier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	_, rest, err := Extract(matchers)
	if err != nil {
		return nil, nil, err
	}
	return q.Querier.LabelValues(ctx, name, hints, rest...)
}

// LabelNames ignores a shard matcher, as LabelValues does.
func (q querier) LabelNames(ctx context.Context, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	_, rest, err := Extract(matchers)
	if err != nil {
		return nil, nil, err
	}
	return q.Querier.LabelNames(ctx, hints, rest...)
}

// filteredSet keeps the series of one shard. Sources that filtered already
// pass every series; the hash per series is cheap next to its samples.
type filteredSet struct {
	storage.SeriesSet
	filter *Filter
}

func (s *filteredSet) Next() bool {
	for s.SeriesSet.Next() {
		if s.filter.Matches(s.SeriesSet.At().Labels()) {
			return true
		}
	}
	return false
}
