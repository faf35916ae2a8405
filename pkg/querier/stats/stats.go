// Package stats counts what one query read, as Cortex's querier statistics
// do: the querier worker puts a QueryStats in each query's context, the
// readers add to it, and the worker hands the counts to the query-frontend
// on the answer (Header), which sums them over the query's split and shard
// queries and logs them with -frontend.query-stats-enabled.
package stats

import (
	"context"
	"net/url"
	"strconv"
	"sync/atomic"
)

// Header carries a querier's statistics of one query on its answer to the
// query-frontend, which takes it off the answer.
const Header = "X-Cortex-Query-Stats"

// QueryStats are the statistics of one query; safe for concurrent use.
// The zero value counts nothing yet.
type QueryStats struct {
	// StoreGatewayTouchedPostings and StoreGatewayTouchedPostingBytes are
	// the postings the store-gateways read from their blocks' indexes for
	// the query, as their Series answers report them.
	StoreGatewayTouchedPostings     atomic.Uint64
	StoreGatewayTouchedPostingBytes atomic.Uint64
}

type contextKey struct{}

// NewContext returns ctx carrying s.
func NewContext(ctx context.Context, s *QueryStats) context.Context {
	return context.WithValue(ctx, contextKey{}, s)
}

// FromContext returns the statistics ctx carries; nil when none (adding
// to a nil QueryStats does nothing).
func FromContext(ctx context.Context) *QueryStats {
	s, _ := ctx.Value(contextKey{}).(*QueryStats)
	return s
}

// AddStoreGatewayTouchedPostings counts postings a store-gateway read.
func (s *QueryStats) AddStoreGatewayTouchedPostings(count, bytes uint64) {
	if s == nil {
		return
	}
	s.StoreGatewayTouchedPostings.Add(count)
	s.StoreGatewayTouchedPostingBytes.Add(bytes)
}

// Merge adds other's counts to s.
func (s *QueryStats) Merge(other *QueryStats) {
	if s == nil || other == nil {
		return
	}
	s.AddStoreGatewayTouchedPostings(other.StoreGatewayTouchedPostings.Load(), other.StoreGatewayTouchedPostingBytes.Load())
}

// Field names of the encoded statistics: the query-frontend's log fields.
const (
	touchedPostingsField     = "store_gateway_touched_postings_count"
	touchedPostingBytesField = "store_gateway_touched_posting_bytes"
)

// Encode writes the statistics as Header's value; "" when there is none.
func (s *QueryStats) Encode() string {
	if s == nil {
		return ""
	}
	v := url.Values{}
	if n := s.StoreGatewayTouchedPostings.Load(); n > 0 {
		v.Set(touchedPostingsField, strconv.FormatUint(n, 10))
		v.Set(touchedPostingBytesField, strconv.FormatUint(s.StoreGatewayTouchedPostingBytes.Load(), 10))
	}
	return v.Encode()
}

// Decode reads Header's value; fields it does not know are skipped, so
// that queriers may report more than the frontend reads.
func Decode(value string) (*QueryStats, error) {
	v, err := url.ParseQuery(value)
	if err != nil {
		return nil, err
	}
	s := &QueryStats{}
	for field, counter := range map[string]*atomic.Uint64{
		touchedPostingsField:     &s.StoreGatewayTouchedPostings,
		touchedPostingBytesField: &s.StoreGatewayTouchedPostingBytes,
	} {
		if raw := v.Get(field); raw != "" {
			n, err := strconv.ParseUint(raw, 10, 64)
			if err != nil {
				return nil, err
			}
			counter.Store(n)
		}
	}
	return s, nil
}

// Fields are the statistics as log attributes, the counted ones only:
// Cortex logs the store-gateways' postings when there were any.
func (s *QueryStats) Fields() []any {
	if s == nil || s.StoreGatewayTouchedPostings.Load() == 0 {
		return nil
	}
	return []any{
		touchedPostingsField, s.StoreGatewayTouchedPostings.Load(),
		touchedPostingBytesField, s.StoreGatewayTouchedPostingBytes.Load(),
	}
}
