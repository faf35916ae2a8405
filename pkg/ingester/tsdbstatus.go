package ingester

import (
	"context"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/tsdb/index"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
)

var _ client.TSDBStatusServer = (*Ingester)(nil)

// maxTSDBStatusLimit bounds the request's limit, as Prometheus's
// /api/v1/status/tsdb does.
const maxTSDBStatusLimit = 10000

// TSDBStatus answers the head statistics of the caller's TSDB, as
// Prometheus's /api/v1/status/tsdb computes them: the TSDB head's Stats by
// metric name, each list the top limit entries, and the head's chunk count
// from the TSDB's prometheus_tsdb_head_chunks gauge. A tenant without a
// TSDB on this ingester gets an empty answer.
func (i *Ingester) TSDBStatus(ctx context.Context, req *client.TSDBStatusRequest) (*client.TSDBStatusResponse, error) {
	if req.Limit < 1 || req.Limit > maxTSDBStatusLimit {
		return nil, status.Errorf(codes.InvalidArgument, "TSDB status limit %d: must be between 1 and %d", req.Limit, maxTSDBStatusLimit)
	}
	done, err := i.admitQuery()
	if err != nil {
		return nil, err
	}
	defer done()
	u, release, err := i.forRead(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if u == nil {
		return &client.TSDBStatusResponse{}, nil
	}
	s := u.db.Head().Stats(model.MetricNameLabel, int(req.Limit))
	out := &client.TSDBStatusResponse{
		NumSeries:  s.NumSeries,
		MinTime:    s.MinTime,
		MaxTime:    s.MaxTime,
		ChunkCount: i.headChunks(u.id),
	}
	if p := s.IndexPostingStats; p != nil {
		out.NumLabelPairs = uint64(max(p.NumLabelPairs, 0))
		out.SeriesCountByMetricName = toTSDBStats(p.CardinalityMetricsStats)
		out.LabelValueCountByLabelName = toTSDBStats(p.CardinalityLabelStats)
		out.MemoryInBytesByLabelName = toTSDBStats(p.LabelValueStats)
		out.SeriesCountByLabelValuePair = toTSDBStats(p.LabelValuePairsStats)
	}
	return out, nil
}

// headChunks reads the chunks in the tenant's head from its TSDB's
// prometheus_tsdb_head_chunks gauge, as Prometheus's API does; 0 when the
// gauge cannot be read.
func (i *Ingester) headChunks(id string) uint64 {
	i.tsdbMetrics.mu.Lock()
	reg := i.tsdbMetrics.regs[id]
	i.tsdbMetrics.mu.Unlock()
	if reg == nil {
		return 0
	}
	mfs, err := reg.Gather()
	if err != nil {
		i.logger.Debug("reading the head's chunk count", "user", id, "err", err)
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() != "prometheus_tsdb_head_chunks" || len(mf.GetMetric()) == 0 {
			continue
		}
		if v := mf.GetMetric()[0].GetGauge().GetValue(); v > 0 {
			return uint64(v)
		}
		return 0
	}
	return 0
}

func toTSDBStats(stats []index.Stat) []*client.TSDBStat {
	out := make([]*client.TSDBStat, 0, len(stats))
	for _, s := range stats {
		out = append(out, &client.TSDBStat{Name: s.Name, Value: s.Count})
	}
	return out
}
