package storegateway

import (
	"fmt"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/metadata"
)

// QueryStatsKey is the trailer of a Series call holding the store-gateway's
// statistics of the call: Cortex's SeriesResponse hints' QueryStats, sent
// as metadata beside the ingesters' messages, as the block lists are
// (hints.go).
const QueryStatsKey = "cortex-query-stats"

// QueryStats are a store-gateway's statistics of one Series call, named as
// Cortex's querier logs them ("store gateway series request stats").
type QueryStats struct {
	BlocksQueried          uint64
	SeriesMergedCount      uint64
	ChunksMergedCount      uint64
	PostingsTouched        uint64
	PostingsTouchedSizeSum uint64
	SeriesTouched          uint64
	SeriesTouchedSizeSum   uint64
	ChunksFetched          uint64
	ChunksFetchCount       uint64
	ChunksFetchedSizeSum   uint64
	DataDownloadedSizeSum  uint64
	// GetAllDuration is the whole call: selecting and sending the series;
	// MergeDuration the part spent merging the blocks' series and chunks.
	GetAllDuration time.Duration
	MergeDuration  time.Duration
}

// Fields are the statistics as log attributes, in Cortex's order.
func (s QueryStats) Fields() []any {
	return []any{
		"blocks_queried", s.BlocksQueried,
		"series_merged_count", s.SeriesMergedCount,
		"chunks_merged_count", s.ChunksMergedCount,
		"postings_touched", s.PostingsTouched,
		"postings_touched_size_sum", s.PostingsTouchedSizeSum,
		"series_touched", s.SeriesTouched,
		"series_touched_size_sum", s.SeriesTouchedSizeSum,
		"chunks_fetched", s.ChunksFetched,
		"chunks_fetch_count", s.ChunksFetchCount,
		"chunks_fetched_size_sum", s.ChunksFetchedSizeSum,
		"data_downloaded_size_sum", s.DataDownloadedSizeSum,
		"get_all_duration", s.GetAllDuration,
		"merge_duration", s.MergeDuration,
	}
}

func (s *QueryStats) counters() map[string]*uint64 {
	return map[string]*uint64{
		"blocks_queried": &s.BlocksQueried, "series_merged_count": &s.SeriesMergedCount, "chunks_merged_count": &s.ChunksMergedCount,
		"postings_touched": &s.PostingsTouched, "postings_touched_size_sum": &s.PostingsTouchedSizeSum,
		"series_touched": &s.SeriesTouched, "series_touched_size_sum": &s.SeriesTouchedSizeSum,
		"chunks_fetched": &s.ChunksFetched, "chunks_fetch_count": &s.ChunksFetchCount, "chunks_fetched_size_sum": &s.ChunksFetchedSizeSum,
		"data_downloaded_size_sum": &s.DataDownloadedSizeSum,
	}
}

func (s QueryStats) trailer() metadata.MD {
	v := url.Values{}
	for name, c := range s.counters() {
		v.Set(name, strconv.FormatUint(*c, 10))
	}
	v.Set("get_all_duration", s.GetAllDuration.String())
	v.Set("merge_duration", s.MergeDuration.String())
	return metadata.Pairs(QueryStatsKey, v.Encode())
}

// QueryStatsFrom reads a Series call's statistics from its trailer; ok is
// false when the store-gateway sent none.
func QueryStatsFrom(trailer metadata.MD) (s QueryStats, ok bool, err error) {
	values := trailer.Get(QueryStatsKey)
	if len(values) == 0 {
		return s, false, nil
	}
	v, err := url.ParseQuery(values[len(values)-1])
	if err != nil {
		return s, false, fmt.Errorf("response trailer %s: %w", QueryStatsKey, err)
	}
	for name, c := range s.counters() {
		if raw := v.Get(name); raw != "" {
			if *c, err = strconv.ParseUint(raw, 10, 64); err != nil {
				return s, false, fmt.Errorf("response trailer %s: %s: %w", QueryStatsKey, name, err)
			}
		}
	}
	for name, d := range map[string]*time.Duration{"get_all_duration": &s.GetAllDuration, "merge_duration": &s.MergeDuration} {
		if raw := v.Get(name); raw != "" {
			if *d, err = time.ParseDuration(raw); err != nil {
				return s, false, fmt.Errorf("response trailer %s: %s: %w", QueryStatsKey, name, err)
			}
		}
	}
	return s, true, nil
}

// requestStats count, as a Series call reads its blocks, what QueryStats
// reports: the index reads of each block's Select, and the chunk reads.
type requestStats struct {
	postingsTouched, seriesTouched, seriesTouchedBytes  atomic.Uint64
	chunksFetched, chunksFetchCount, chunksFetchedBytes atomic.Uint64
}

// touchedIndex counts a Select's index reads.
func (r *request) touchedIndex(postings, series, seriesBytes int64) {
	if r == nil {
		return
	}
	r.stats.postingsTouched.Add(uint64(postings))
	r.stats.seriesTouched.Add(uint64(series))
	r.stats.seriesTouchedBytes.Add(uint64(seriesBytes))
}

// fetchedChunks counts chunks read from the bucket: how many, their bytes,
// and the range requests that read them.
func (r *request) fetchedChunks(chunks, bytes, requests int) {
	if r == nil {
		return
	}
	r.stats.chunksFetched.Add(uint64(chunks))
	r.stats.chunksFetchedBytes.Add(uint64(bytes))
	r.stats.chunksFetchCount.Add(uint64(requests))
}

// queryStats are the request's statistics so far.
func (r *request) queryStats() QueryStats {
	if r == nil {
		return QueryStats{}
	}
	return QueryStats{
		PostingsTouched:        r.stats.postingsTouched.Load(),
		PostingsTouchedSizeSum: r.stats.postingsTouched.Load() * postingBytes,
		SeriesTouched:          r.stats.seriesTouched.Load(),
		SeriesTouchedSizeSum:   r.stats.seriesTouchedBytes.Load(),
		ChunksFetched:          r.stats.chunksFetched.Load(),
		ChunksFetchCount:       r.stats.chunksFetchCount.Load(),
		ChunksFetchedSizeSum:   r.stats.chunksFetchedBytes.Load(),
		DataDownloadedSizeSum:  uint64(r.downloaded.Load()),
	}
}
