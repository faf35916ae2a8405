package ruler

import (
	"context"
	"fmt"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// Pusher is the write path rule results go through: the distributor's
// Push, which validates and limits them like any other write. The tenant
// comes from ctx.
type Pusher interface {
	Push(ctx context.Context, req *prompb.WriteRequest) error
}

// pusherAppendable writes one tenant's rule results (recording rules,
// ALERTS and ALERTS_FOR_STATE) through a Pusher, one write request per
// rule evaluation.
type pusherAppendable struct {
	pusher  Pusher
	user    string
	metrics *metrics
}

func (a *pusherAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &pusherAppender{a: a, ctx: ctx}
}

type pusherAppender struct {
	a   *pusherAppendable
	ctx context.Context
	req prompb.WriteRequest
}

func (p *pusherAppender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	ts := prompb.TimeSeries{Labels: prompb.FromLabels(ls, nil)}
	switch {
	case fh != nil:
		ts.Histograms = []prompb.Histogram{prompb.FromFloatHistogram(t, fh)}
	case h != nil:
		ts.Histograms = []prompb.Histogram{prompb.FromIntHistogram(t, h)}
	default:
		ts.Samples = []prompb.Sample{{Timestamp: t, Value: v}}
	}
	p.req.Timeseries = append(p.req.Timeseries, ts)
	return 0, nil
}

// Commit pushes the samples appended, as the rule's tenant whatever ctx
// carries: a rule writes to its own tenant only.
func (p *pusherAppender) Commit() error {
	if len(p.req.Timeseries) == 0 {
		return nil
	}
	p.a.metrics.writes.WithLabelValues(p.a.user).Inc()
	ctx := tenant.Inject(p.ctx, p.a.user)
	if err := p.a.pusher.Push(ctx, &p.req); err != nil {
		p.a.metrics.writesFailed.WithLabelValues(p.a.user).Inc()
		return fmt.Errorf("writing rule results of tenant %q: %w", p.a.user, err)
	}
	return nil
}

func (p *pusherAppender) Rollback() error {
	p.req.Timeseries = nil
	return nil
}
