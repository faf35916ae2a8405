package frontend

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
)

// A part's cache entry holds extents: answers for sub-ranges of the part's
// split interval, all on one step grid (the key holds the query, the step
// and start modulo step), sorted and never overlapping. A dashboard whose
// range moves forward every refresh reads what it already has from the
// extents and asks the queriers only for the steps it lacks, as Cortex's
// results cache does.
type extent struct {
	Start int64           `json:"start"` // first step, milliseconds
	End   int64           `json:"end"`   // last step, milliseconds
	Body  json.RawMessage `json:"body"`  // the querier's matrix answer for [Start, End]
}

// partFetch is how a part's missing sub-range is asked of a querier.
type partFetch func(ctx context.Context, start, end int64) (*frontendpb.HTTPResponse, error)

// piece is one sub-range of a part's answer, in time order.
type piece struct {
	start, end int64
	body       []byte
	cache      bool // fetched and old enough to keep
}

// cachedPart answers the part [start, end] (steps on the grid of start)
// from the extents under key plus fetches of the missing steps, and stores
// the new extents. Steps after freshBefore are fetched but never kept.
func (f *Frontend) cachedPart(ctx context.Context, key string, start, end, step, freshBefore int64, fetch partFetch) (*frontendpb.HTTPResponse, error) {
	end = start + (end-start)/step*step // the last step: extents end on the grid
	cacheEnd := end
	if end > freshBefore {
		cacheEnd = end - (end-freshBefore+step-1)/step*step // last step at or before freshBefore
	}
	var extents []extent
	if b, ok := f.cache.get(key); ok {
		if err := json.Unmarshal(b, &extents); err != nil {
			extents = nil // an entry of another version: rebuild it
		}
	}
	var pieces []piece
	cursor := start
	for _, e := range extents {
		if cursor > cacheEnd {
			break
		}
		if e.End < cursor || e.Start > cacheEnd {
			continue
		}
		if e.Start > cursor {
			pieces = append(pieces, piece{start: cursor, end: e.Start - step, cache: true})
		}
		pieces = append(pieces, piece{start: max(e.Start, cursor), end: min(e.End, cacheEnd), body: e.Body})
		cursor = min(e.End, cacheEnd) + step
	}
	if cursor <= cacheEnd {
		pieces = append(pieces, piece{start: cursor, end: cacheEnd, cache: true})
		cursor = cacheEnd + step
	}
	if cursor <= end {
		pieces = append(pieces, piece{start: cursor, end: end})
	}

	fetched := 0
	for i := range pieces {
		p := &pieces[i]
		if p.body != nil {
			continue
		}
		resp, err := fetch(ctx, p.start, p.end)
		if err != nil || resp.Code != http.StatusOK {
			return resp, err
		}
		p.body = resp.Body
		fetched++
		if p.cache && hasWarnings(p.body) {
			p.cache = false // possibly partial: ask again next time
		}
	}
	if slices.ContainsFunc(pieces, func(p piece) bool { return p.cache }) {
		if err := f.storeExtents(key, extents, pieces, step); err != nil {
			f.logger.Warn("results cache: not storing a part's answer", "err", err)
		}
	}
	if len(pieces) == 1 && pieces[0].start == start && pieces[0].end == end && fetched == 1 {
		return &frontendpb.HTTPResponse{Code: http.StatusOK, Body: pieces[0].body, Headers: jsonHeaders}, nil
	}
	body, err := mergePieces(pieces)
	if err != nil {
		return nil, err
	}
	return &frontendpb.HTTPResponse{Code: http.StatusOK, Body: body, Headers: jsonHeaders}, nil
}

// storeExtents adds the cacheable fetched pieces to the extents and joins
// those that touch, so an entry stays one extent per contiguous range.
func (f *Frontend) storeExtents(key string, extents []extent, pieces []piece, step int64) error {
	for _, p := range pieces {
		if p.cache {
			extents = append(extents, extent{Start: p.start, End: p.end, Body: p.body})
		}
	}
	slices.SortFunc(extents, func(a, b extent) int { return compareInt64(a.Start, b.Start) })
	joined := extents[:0]
	for _, e := range extents {
		n := len(joined)
		if n == 0 || joined[n-1].End+step < e.Start {
			joined = append(joined, e)
			continue
		}
		last := &joined[n-1]
		if e.End <= last.End {
			continue // already covered
		}
		body, err := mergePieces([]piece{
			{start: last.Start, end: e.Start - step, body: last.Body},
			{start: e.Start, end: e.End, body: e.Body},
		})
		if err != nil {
			return err
		}
		last.End, last.Body = e.End, body
	}
	b, err := json.Marshal(joined)
	if err != nil {
		return err
	}
	f.cache.set(key, b)
	return nil
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// hasWarnings reports whether a querier's answer carries warnings.
func hasWarnings(body []byte) bool {
	var r struct {
		Warnings []string `json:"warnings"`
	}
	return json.Unmarshal(body, &r) == nil && len(r.Warnings) > 0
}

// partCacheKey is the cache key of a part: everything that decides its
// answer except its start and end, plus the split interval it lies in.
func partCacheKey(tenantID, path, query string, step, start, interval int64, extra url.Values) string {
	bucket := int64(0)
	if interval > 0 {
		bucket = start / interval
	}
	return tenantID + "\x00" + path + "\x00" + query + "\x00" + strconv.FormatInt(step, 10) + "\x00" +
		strconv.FormatInt(start%step, 10) + "\x00" + extra.Encode() + "\x00" + strconv.FormatInt(bucket, 10)
}

// mergePieces joins the matrix answers of consecutive sub-ranges, keeping
// of each only the points within its range.
func mergePieces(pieces []piece) ([]byte, error) {
	bodies := make([]trimmedBody, len(pieces))
	for i, p := range pieces {
		bodies[i] = trimmedBody{body: p.body, start: p.start, end: p.end, trim: true}
	}
	return mergeBodies(bodies)
}

// pointTimeMs reads the timestamp of a JSON point [<seconds>, ...]
// without decoding the rest: answers hold many points.
func pointTimeMs(raw json.RawMessage) (int64, error) {
	i := bytes.IndexByte(raw, ',')
	if len(raw) < 3 || raw[0] != '[' || i < 0 {
		return 0, fmt.Errorf("decoding a point %.40q: not a [time, value] pair", raw)
	}
	return parseTimeMs(string(bytes.TrimSpace(raw[1:i])))
}
