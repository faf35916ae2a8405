package querier

import (
	"time"

	"github.com/prometheus/prometheus/storage"
)

// timeSplitQueryable reads recent data from the ingesters and older data
// from the blocks in object storage, as Cortex's querier does: the
// ingesters for the last -querier.query-ingesters-within (0: the whole
// range), the blocks for what is older than -querier.query-store-after
// (0: the whole range). Where both are asked, their series are merged and a
// sample both hold (an ingester's block that was shipped) counts once.
type timeSplitQueryable struct {
	ingesters storage.Queryable
	store     storage.Queryable // nil without long-term storage

	queryIngestersWithin time.Duration
	queryStoreAfter      time.Duration
	now                  func() time.Time
}

func (q *timeSplitQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	if q.store == nil {
		return q.ingesters.Querier(mint, maxt)
	}
	now := q.now().UnixMilli()
	var queriers []storage.Querier
	ingMint := mint
	if q.queryIngestersWithin > 0 {
		ingMint = max(mint, now-q.queryIngestersWithin.Milliseconds())
	}
	if ingMint <= maxt {
		iq, err := q.ingesters.Querier(ingMint, maxt)
		if err != nil {
			return nil, err
		}
		queriers = append(queriers, iq)
	}
	storeMaxt := maxt
	if q.queryStoreAfter > 0 {
		storeMaxt = min(maxt, now-q.queryStoreAfter.Milliseconds())
	}
	if mint <= storeMaxt {
		sq, err := q.store.Querier(mint, storeMaxt)
		if err != nil {
			for _, iq := range queriers {
				_ = iq.Close()
			}
			return nil, err
		}
		queriers = append(queriers, sq)
	}
	switch len(queriers) {
	case 0:
		return storage.NoopQuerier(), nil
	case 1:
		return queriers[0], nil
	}
	// Both are primaries: a failure of either fails the query rather than
	// answering with part of the range missing. Their chunks count
	// together towards -querier.max-fetched-chunks-per-query.
	shareChunkCount(queriers[0], queriers[1])
	return storage.NewMergeQuerier(queriers, nil, storage.ChainedSeriesMerge), nil
}
