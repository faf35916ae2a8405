package client

import (
	"context"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// LabelStringsFunc reads label names or label values of the series
// matching ms from q.
type LabelStringsFunc func(q storage.Querier, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, error)

// LabelNamesOf reads label names, for a LabelNames request.
func LabelNamesOf(ctx context.Context) LabelStringsFunc {
	return func(q storage.Querier, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, error) {
		names, _, err := q.LabelNames(ctx, hints, ms...)
		return names, err
	}
}

// LabelValuesOf reads the values of the label name, for a LabelValues
// request.
func LabelValuesOf(ctx context.Context, name string) LabelStringsFunc {
	return func(q storage.Querier, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, error) {
		values, _, err := q.LabelValues(ctx, name, hints, ms...)
		return values, err
	}
}

// CollectLabelStrings answers a LabelNames or LabelValues request over q,
// as ingesters and store-gateways both do: the union of get's answers for
// each matcher set (every series when there is none), sorted,
// de-duplicated and cut to limit (0: no limit). An error is get's, as is.
func CollectLabelStrings(q storage.Querier, sets [][]*labels.Matcher, limit int64, get LabelStringsFunc) ([]string, error) {
	if len(sets) == 0 {
		sets = [][]*labels.Matcher{nil}
	}
	hints := &storage.LabelHints{Limit: int(max(limit, 0))}
	var out []string
	for _, ms := range sets {
		vals, err := get(q, hints, ms)
		if err != nil {
			return nil, err
		}
		out = append(out, vals...)
	}
	// Several matcher sets, or blocks, may give the same strings.
	slices.Sort(out)
	out = slices.Compact(out)
	if limit > 0 && int64(len(out)) > limit {
		out = out[:limit]
	}
	return out, nil
}
