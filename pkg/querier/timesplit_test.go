package querier

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/teststorage"
)

// recordingQueryable remembers the ranges it was asked for.
type recordingQueryable struct {
	storage.Queryable
	ranges [][2]int64
}

func (r *recordingQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	r.ranges = append(r.ranges, [2]int64{mint, maxt})
	return r.Queryable.Querier(mint, maxt)
}

// storeWith returns a TSDB holding series m with a sample at each
// timestamp, value = timestamp.
func storeWith(t *testing.T, ts ...int64) *recordingQueryable {
	t.Helper()
	s := teststorage.New(t)
	app := s.Appender(context.Background())
	for _, at := range ts {
		if _, err := app.Append(0, labels.FromStrings("__name__", "m"), at, float64(at)); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	return &recordingQueryable{Queryable: s}
}

func timestampsOf(t *testing.T, q storage.Queryable, mint, maxt int64) []int64 {
	t.Helper()
	querier, err := q.Querier(mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	defer querier.Close()
	ss := querier.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
	var out []int64
	var it chunkenc.Iterator
	for ss.Next() {
		it = ss.At().Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			at, _ := it.At()
			out = append(out, at)
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTimeSplitQueryable(t *testing.T) {
	now := time.UnixMilli(100_000)
	// The ingesters hold the recent samples; the store holds the older ones
	// plus the ones the ingesters shipped but still hold (60s, 70s).
	ingesters := storeWith(t, 60_000, 70_000, 80_000, 90_000)
	store := storeWith(t, 10_000, 20_000, 60_000, 70_000)

	both := &timeSplitQueryable{ingesters: ingesters, store: store, now: func() time.Time { return now }}
	if got, want := timestampsOf(t, both, 0, 100_000), []int64{10_000, 20_000, 60_000, 70_000, 80_000, 90_000}; !slices.Equal(got, want) {
		t.Errorf("merged samples %v, want %v (the shipped ones once)", got, want)
	}

	ingesters.ranges, store.ranges = nil, nil
	split := &timeSplitQueryable{ingesters: ingesters, store: store, now: func() time.Time { return now },
		queryIngestersWithin: 50 * time.Second, queryStoreAfter: 30 * time.Second}
	timestampsOf(t, split, 0, 100_000)
	if want := [][2]int64{{50_000, 100_000}}; !slices.Equal(ingesters.ranges, want) {
		t.Errorf("ingesters asked for %v, want %v", ingesters.ranges, want)
	}
	if want := [][2]int64{{0, 70_000}}; !slices.Equal(store.ranges, want) {
		t.Errorf("store asked for %v, want %v", store.ranges, want)
	}

	// A range older than -querier.query-ingesters-within reaches the store alone.
	ingesters.ranges, store.ranges = nil, nil
	if got := timestampsOf(t, split, 0, 30_000); !slices.Equal(got, []int64{10_000, 20_000}) {
		t.Errorf("old range: %v", got)
	}
	if len(ingesters.ranges) != 0 {
		t.Errorf("ingesters asked for an old range: %v", ingesters.ranges)
	}

	// Without long-term storage, only the ingesters are asked.
	ingesters.ranges = nil
	only := &timeSplitQueryable{ingesters: ingesters, now: func() time.Time { return now }, queryIngestersWithin: 50 * time.Second}
	if got := timestampsOf(t, only, 0, 100_000); !slices.Equal(got, []int64{60_000, 70_000, 80_000, 90_000}) {
		t.Errorf("ingesters only: %v", got)
	}
	if want := [][2]int64{{0, 100_000}}; !slices.Equal(ingesters.ranges, want) {
		t.Errorf("without a store the ingesters are asked for %v, want the whole range", ingesters.ranges)
	}
}

func TestStoreSplitFlagsValidated(t *testing.T) {
	cfg := defaultConfig()
	cfg.QueryIngestersWithin, cfg.QueryStoreAfter = time.Hour, 2*time.Hour
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "-querier.query-store-after") {
		t.Errorf("store-after beyond ingesters-within: %v, want an error naming -querier.query-store-after", err)
	}
	cfg.QueryStoreAfter = 30 * time.Minute
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid split: %v", err)
	}
}
