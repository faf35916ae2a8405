package tenantfederation

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// oneTenantDown is the store with one tenant whose reads fail.
type oneTenantDown struct {
	s    *tenantStore
	down string
}

func (o oneTenantDown) Querier(mint, maxt int64) (storage.Querier, error) {
	return downQuerier{&tenantStoreQuerier{o.s}, o.down}, nil
}

type downQuerier struct {
	*tenantStoreQuerier
	down string
}

func (d downQuerier) isDown(ctx context.Context) error {
	if id, _ := tenant.ID(ctx); id == d.down {
		return errors.New("store down for " + id)
	}
	return nil
}

func (d downQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if err := d.isDown(ctx); err != nil {
		return storage.ErrSeriesSet(err)
	}
	return d.tenantStoreQuerier.Select(ctx, sortSeries, hints, ms...)
}

func (d downQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if err := d.isDown(ctx); err != nil {
		return nil, nil, err
	}
	return d.tenantStoreQuerier.LabelNames(ctx, hints, ms...)
}

func TestPartialDataAnswersFromTheTenantsRead(t *testing.T) {
	cfg := enabled()
	cfg.AllowPartialData = true
	q := NewQueryable(oneTenantDown{newStore(), "team-b"}, cfg)
	ctx := tenant.Inject(context.Background(), "team-a|team-b")
	qr, err := q.Querier(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	set := qr.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	var got []string
	for set.Next() {
		got = append(got, set.At().Labels().Get(TenantLabel))
	}
	if set.Err() != nil || strings.Join(got, ",") != "team-a,team-a" {
		t.Fatalf("series of tenants %v, err %v: want team-a's two series", got, set.Err())
	}
	const want = "failed to query tenant team-b: store down for team-b (partial data returned)"
	if ws := set.Warnings().AsErrors(); len(ws) != 1 || ws[0].Error() != want {
		t.Fatalf("warnings %v, want %q", ws, want)
	}

	names, ws, err := qr.LabelNames(ctx, nil)
	if err != nil || !strings.Contains(strings.Join(names, ","), "job") {
		t.Fatalf("label names %v, err %v: want team-a's", names, err)
	}
	if es := ws.AsErrors(); len(es) != 1 || !strings.Contains(es[0].Error(), "querying tenant team-b: store down for team-b") {
		t.Fatalf("label names warnings %v, want team-b's failure", es)
	}
}

func TestWithoutPartialDataATenantFailureFailsTheQuery(t *testing.T) {
	q := NewQueryable(oneTenantDown{newStore(), "team-b"}, enabled())
	if _, err := selectAll(t, q, "team-a|team-b"); err == nil || !strings.Contains(err.Error(), "store down for team-b") {
		t.Fatalf("select: %v, want team-b's error", err)
	}
	qr, _ := q.Querier(0, 1)
	if _, _, err := qr.LabelNames(tenant.Inject(context.Background(), "team-a|team-b"), nil); err == nil || !strings.Contains(err.Error(), "querying tenant team-b: store down for team-b") {
		t.Fatalf("label names: %v, want team-b's error naming it", err)
	}
}
