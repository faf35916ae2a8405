package querier

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/storegateway"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// StoreGateway is one store-gateway the querier reads blocks from: its
// client and its address, for errors.
type StoreGateway interface {
	storegateway.StoreGatewayClient
	Addr() string
}

// storeGatewayQueryable reads the blocks in long-term storage from the
// store-gateways of -querier.store-gateway-addresses. Without a sharding
// ring every store-gateway serves every block, so a call asks one and, when
// it fails, the next: the answer comes whole from one of them, or the query
// fails naming each store-gateway's error, never with blocks missing.
type storeGatewayQueryable struct {
	gateways []StoreGateway
	limits   *validation.Overrides
}

// NewStoreGatewayQueryable returns the queryable of WithStore over gateways.
func NewStoreGatewayQueryable(gateways []StoreGateway, limits *validation.Overrides) storage.Queryable {
	return &storeGatewayQueryable{gateways: gateways, limits: limits}
}

func (q *storeGatewayQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &storeGatewayQuerier{q: q, mint: mint, maxt: maxt}, nil
}

type storeGatewayQuerier struct {
	q          *storeGatewayQueryable
	mint, maxt int64
}

// firstAnswer calls the store-gateways in turn until one answers.
func firstAnswer[T any](ctx context.Context, gateways []StoreGateway, call func(context.Context, StoreGateway) (T, error)) (T, error) {
	var (
		zero T
		errs []error
	)
	if len(gateways) == 0 {
		return zero, &unavailableError{errors.New("no store-gateway to query (-querier.store-gateway-addresses)")}
	}
	for _, g := range gateways {
		res, err := call(ctx, g)
		if err == nil {
			return res, nil
		}
		var le *limitError
		if errors.As(err, &le) || ctx.Err() != nil {
			return zero, err
		}
		errs = append(errs, fmt.Errorf("store-gateway %s: %w", g.Addr(), err))
	}
	return zero, &unavailableError{fmt.Errorf("no store-gateway answered: %w", errors.Join(errs...))}
}

func (s *storeGatewayQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	userID, err := tenant.ID(ctx)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	limits := s.q.limits.For(userID)
	mint, maxt := s.mint, s.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	if mint > maxt {
		return storage.EmptySeriesSet()
	}
	req := &prompb.Query{StartTimestampMs: mint, EndTimestampMs: maxt, Matchers: client.ToPromMatchers(matchers)}
	chunked, err := firstAnswer(ctx, s.q.gateways, func(ctx context.Context, g StoreGateway) ([]*prompb.ChunkedSeries, error) {
		return readSeries(ctx, g, req, limits)
	})
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	// The store-gateway sends whole chunks; chunkSeries yields only the
	// samples in [mint, maxt].
	merged := mergeAnswers([]ingesterAnswer{{chunked: chunked}}, mint, maxt)
	if hints != nil && hints.Limit > 0 && len(merged) > hints.Limit {
		merged = merged[:hints.Limit]
	}
	series := make([]storage.Series, len(merged))
	for i, m := range merged {
		series[i] = m
	}
	return &seriesSet{series: series, i: -1}
}

// readSeries reads one store-gateway's answer, stopping once it breaks the
// tenant's series or fetched-samples limit.
func readSeries(ctx context.Context, g StoreGateway, req *prompb.Query, limits *validation.Limits) ([]*prompb.ChunkedSeries, error) {
	stream, err := g.Series(ctx, req)
	if err != nil {
		return nil, err
	}
	var (
		d   chunkDecoder
		out []*prompb.ChunkedSeries
		lim = &streamLimiter{limits: limits}
	)
	for {
		res, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var samples int
		for _, cs := range res.ChunkedSeries {
			samples += d.numSamples(cs.Chunks)
		}
		out = append(out, res.ChunkedSeries...)
		if err := lim.add(len(res.ChunkedSeries), samples); err != nil {
			return nil, err
		}
	}
}

func (s *storeGatewayQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	req := &client.LabelValuesRequest{Name: name, StartMs: s.mint, EndMs: s.maxt, MatcherSets: client.ToMatcherSets(matchers), Limit: int64(hintLimit(hints))}
	res, err := firstAnswer(ctx, s.q.gateways, func(ctx context.Context, g StoreGateway) (*client.StringsResponse, error) {
		return g.LabelValues(ctx, req)
	})
	if err != nil {
		return nil, nil, err
	}
	return mergeStrings([]*client.StringsResponse{res}, hints), nil, nil
}

func (s *storeGatewayQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	req := &client.LabelNamesRequest{StartMs: s.mint, EndMs: s.maxt, MatcherSets: client.ToMatcherSets(matchers), Limit: int64(hintLimit(hints))}
	res, err := firstAnswer(ctx, s.q.gateways, func(ctx context.Context, g StoreGateway) (*client.StringsResponse, error) {
		return g.LabelNames(ctx, req)
	})
	if err != nil {
		return nil, nil, err
	}
	return mergeStrings([]*client.StringsResponse{res}, hints), nil, nil
}

func (s *storeGatewayQuerier) Close() error { return nil }
