package querier

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/storegateway"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// fakeGateway answers Series with series, or fails with err.
type fakeGateway struct {
	addr   string
	series []*prompb.ChunkedSeries
	err    error
	calls  int
}

func (g *fakeGateway) Addr() string { return g.addr }

func (g *fakeGateway) Series(context.Context, *prompb.Query, ...grpc.CallOption) (storegateway.SeriesClient, error) {
	g.calls++
	if g.err != nil {
		return nil, g.err
	}
	return &fakeSeriesStream{batches: [][]*prompb.ChunkedSeries{g.series}}, nil
}

func (g *fakeGateway) LabelNames(context.Context, *client.LabelNamesRequest, ...grpc.CallOption) (*client.StringsResponse, error) {
	g.calls++
	return &client.StringsResponse{Values: []string{"__name__", "series"}}, g.err
}

func (g *fakeGateway) LabelValues(context.Context, *client.LabelValuesRequest, ...grpc.CallOption) (*client.StringsResponse, error) {
	g.calls++
	return &client.StringsResponse{Values: []string{"a"}}, g.err
}

type fakeSeriesStream struct {
	grpc.ClientStream
	batches [][]*prompb.ChunkedSeries
}

func (s *fakeSeriesStream) Recv() (*prompb.ChunkedReadResponse, error) {
	if len(s.batches) == 0 {
		return nil, io.EOF
	}
	b := s.batches[0]
	s.batches = s.batches[1:]
	return &prompb.ChunkedReadResponse{ChunkedSeries: b}, nil
}

func chunkedSeries(t *testing.T, name string, samples ...prompb.Sample) *prompb.ChunkedSeries {
	t.Helper()
	cs, err := encodeChunks(prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: name}}, Samples: samples}, 120)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func storeLimits(t *testing.T, maxSeries int) *validation.Overrides {
	t.Helper()
	var l validation.Limits
	l.RegisterFlags(flag.NewFlagSet("limits", flag.PanicOnError))
	l.MaxSeriesPerQuery = maxSeries
	return validation.NewOverrides(l, nil)
}

func selectStore(q *storeGatewayQueryable, mint, maxt int64) (map[string][]int64, error) {
	querier, _ := q.Querier(mint, maxt)
	ss := querier.Select(tenant.Inject(context.Background(), "team-a"), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	out := map[string][]int64{}
	var it chunkenc.Iterator
	for ss.Next() {
		it = ss.At().Iterator(it)
		name := ss.At().Labels().Get("__name__")
		for it.Next() == chunkenc.ValFloat {
			ts, _ := it.At()
			out[name] = append(out[name], ts)
		}
	}
	return out, ss.Err()
}

func TestStoreGatewayQueryableTriesTheNext(t *testing.T) {
	down := &fakeGateway{addr: "sg-1:9095", err: errors.New("connection refused")}
	up := &fakeGateway{addr: "sg-2:9095", series: []*prompb.ChunkedSeries{chunkedSeries(t, "m", sample(10, 1), sample(20, 2), sample(30, 3))}}
	q := NewStoreGatewayQueryable([]StoreGateway{down, up}, storeLimits(t, 0)).(*storeGatewayQueryable)

	// Whole chunks come back; only the samples in the range are yielded.
	got, err := selectStore(q, 15, 30)
	if err != nil || len(got["m"]) != 2 || got["m"][0] != 20 || got["m"][1] != 30 {
		t.Fatalf("got %v, %v; want m at 20 and 30 from the second store-gateway", got, err)
	}
	if down.calls != 1 || up.calls != 1 {
		t.Errorf("calls %d and %d, want one each", down.calls, up.calls)
	}

	// None answering fails the query, naming each store-gateway.
	q = NewStoreGatewayQueryable([]StoreGateway{down, &fakeGateway{addr: "sg-3:9095", err: errors.New("certificate signed by unknown authority")}}, storeLimits(t, 0)).(*storeGatewayQueryable)
	_, err = selectStore(q, 0, 100)
	var unavailable *unavailableError
	if !errors.As(err, &unavailable) || !strings.Contains(err.Error(), "sg-1:9095") || !strings.Contains(err.Error(), "sg-3:9095: certificate signed by unknown authority") {
		t.Fatalf("all store-gateways down: %v, want an unavailable error naming each", err)
	}

	// Label names come from the first that answers too.
	querier, _ := NewStoreGatewayQueryable([]StoreGateway{down, up}, storeLimits(t, 0)).Querier(0, 100)
	names, _, err := querier.LabelNames(tenant.Inject(context.Background(), "team-a"), nil)
	if err != nil || strings.Join(names, ",") != "__name__,series" {
		t.Errorf("label names %v, %v", names, err)
	}
}

func TestStoreGatewayQueryableLimits(t *testing.T) {
	g := &fakeGateway{addr: "sg-1:9095", series: []*prompb.ChunkedSeries{chunkedSeries(t, "a", sample(10, 1)), chunkedSeries(t, "b", sample(10, 1))}}
	other := &fakeGateway{addr: "sg-2:9095", series: g.series}
	q := NewStoreGatewayQueryable([]StoreGateway{g, other}, storeLimits(t, 1)).(*storeGatewayQueryable)
	_, err := selectStore(q, 0, 100)
	var le *limitError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "-querier.max-series-per-query") {
		t.Fatalf("two series over a limit of one: %v, want the series limit error", err)
	}
	if other.calls != 0 {
		t.Error("a limit error was retried on another store-gateway")
	}
}
