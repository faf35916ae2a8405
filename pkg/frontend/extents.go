package frontend

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
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
	Start, End int64  // first and last step, milliseconds
	Body       []byte // the matrix answer for [Start, End]
}

// partFetch is how a part's missing sub-range is asked of a querier.
type partFetch func(ctx context.Context, start, end int64) (*frontendpb.HTTPResponse, error)

// piece is one sub-range of a part's answer, in time order.
type piece struct {
	start, end int64
	body       []byte
	cache      bool // fetched and old enough to keep
	whole      bool // body is exactly the answer for [start, end]: no trimming
}

// cachedPart answers the part [start, end] (steps on the grid of start)
// from cached, the extents under key (nil: none), plus fetches of the
// missing steps. The answer
// for [start, end], without the steps after freshBefore, becomes the
// extent that replaces those it overlaps: a moving dashboard keeps one
// extent that moves with it, and each refresh decodes it once.
func (f *Frontend) cachedPart(ctx context.Context, key string, cached []byte, start, end, step, freshBefore int64, fetch partFetch) (*frontendpb.HTTPResponse, error) {
	end = start + (end-start)/step*step // the last step: extents end on the grid
	cacheEnd := end
	if end > freshBefore {
		cacheEnd = end - (end-freshBefore+step-1)/step*step // last step at or before freshBefore
	}
	extents := decodeExtents(cached) // nil for an entry it cannot read: rebuilt below
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
		pieces = append(pieces, piece{start: max(e.Start, cursor), end: min(e.End, cacheEnd), body: e.Body, whole: e.Start == max(e.Start, cursor) && e.End == min(e.End, cacheEnd)})
		cursor = min(e.End, cacheEnd) + step
	}
	if cursor <= cacheEnd {
		pieces = append(pieces, piece{start: cursor, end: cacheEnd, cache: true})
		cursor = cacheEnd + step
	}
	if cursor <= end {
		pieces = append(pieces, piece{start: cursor, end: end})
	}

	fetched, keep := 0, true
	for i := range pieces {
		p := &pieces[i]
		if p.body != nil {
			continue
		}
		resp, err := fetch(ctx, p.start, p.end)
		if err != nil || resp.Code != http.StatusOK {
			return resp, err
		}
		p.body, p.whole = resp.Body, true
		fetched++
		if p.cache && hasWarnings(p.body) {
			keep = false // possibly partial: ask again next time
		}
	}
	keep = keep && fetched > 0 && cacheEnd >= start

	// One piece that is a whole answer (an extent or a fetch) is the answer.
	if len(pieces) == 1 && pieces[0].whole {
		if keep {
			f.storeExtent(key, extents, extent{Start: start, End: end, Body: pieces[0].body})
		}
		return &frontendpb.HTTPResponse{Code: http.StatusOK, Body: pieces[0].body, Headers: jsonHeaders}, nil
	}
	bodies := make([]trimmedBody, len(pieces))
	for i, p := range pieces {
		bodies[i] = trimmedBody{body: p.body, start: p.start, end: p.end, trim: !p.whole}
	}
	m, err := decodeMatrices(bodies)
	if err != nil {
		return nil, err
	}
	body, err := m.encode(math.MaxInt64)
	if err != nil {
		return nil, err
	}
	if keep {
		kept := body
		if cacheEnd < end {
			if kept, err = m.encode(cacheEnd); err != nil {
				return nil, err
			}
		}
		f.storeExtent(key, extents, extent{Start: start, End: cacheEnd, Body: kept})
	}
	return &frontendpb.HTTPResponse{Code: http.StatusOK, Body: body, Headers: jsonHeaders}, nil
}

// storeExtent stores e in place of the extents it overlaps.
func (f *Frontend) storeExtent(key string, extents []extent, e extent) {
	out := []extent{e}
	for _, old := range extents {
		if old.End < e.Start || old.Start > e.End {
			out = append(out, old)
		}
	}
	slices.SortFunc(out, func(a, b extent) int { return cmp.Compare(a.Start, b.Start) })
	f.cache.store(key, encodeExtents(out))
}

// extentsVersion starts an encoded entry; another value is not read.
const extentsVersion = 1

// encodeExtents writes extents as a version byte, then per extent its start
// and end (varints) and its body (length-prefixed): reading an entry back
// costs no JSON parsing.
func encodeExtents(extents []extent) []byte {
	size := 1
	for _, e := range extents {
		size += 3*binary.MaxVarintLen64 + len(e.Body)
	}
	b := make([]byte, 0, size)
	b = append(b, extentsVersion)
	for _, e := range extents {
		b = binary.AppendVarint(b, e.Start)
		b = binary.AppendVarint(b, e.End)
		b = binary.AppendUvarint(b, uint64(len(e.Body)))
		b = append(b, e.Body...)
	}
	return b
}

// decodeExtents reads encodeExtents' output; nil when b is not one.
func decodeExtents(b []byte) []extent {
	if len(b) == 0 || b[0] != extentsVersion {
		return nil
	}
	b = b[1:]
	var out []extent
	for len(b) > 0 {
		start, n1 := binary.Varint(b)
		if n1 <= 0 {
			return nil
		}
		end, n2 := binary.Varint(b[n1:])
		if n2 <= 0 {
			return nil
		}
		size, n3 := binary.Uvarint(b[n1+n2:])
		b = b[n1+n2:]
		if n3 <= 0 || uint64(len(b)-n3) < size {
			return nil
		}
		out = append(out, extent{Start: start, End: end, Body: b[n3 : n3+int(size)]})
		b = b[n3+int(size):]
	}
	return out
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

// pointTimeMs reads the timestamp of a JSON point [<seconds>, ...]
// without decoding the rest: answers hold many points.
func pointTimeMs(raw json.RawMessage) (int64, error) {
	i := bytes.IndexByte(raw, ',')
	if len(raw) < 3 || raw[0] != '[' || i < 0 {
		return 0, fmt.Errorf("decoding a point %.40q: not a [time, value] pair", raw)
	}
	return parseTimeMs(string(bytes.TrimSpace(raw[1:i])))
}
