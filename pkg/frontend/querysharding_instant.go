package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
)

// roundTripOther runs a request other than a range query: an instant
// query as the tenant's shard queries when it is shardable, anything else
// (and an instant query that is not) whole.
func (f *Frontend) roundTripOther(ctx context.Context, tenantID string, r *http.Request, header http.Header, body []byte, whole *frontendpb.HTTPRequest) (*frontendpb.HTTPResponse, error) {
	n := f.shardSize(tenantID)
	if n <= 1 || !strings.HasSuffix(r.URL.Path, "/api/v1/query") {
		return f.RoundTrip(ctx, tenantID, whole)
	}
	vals := formValues(r, body)
	query := vals.Get("query")
	if query == "" || vals.Get("limit") != "" {
		// A limit would bound each shard's answer, not the query's.
		return f.RoundTrip(ctx, tenantID, whole)
	}
	f.sharding.attempted.Inc()
	queries := f.shardQueries(tenantID, query, n)
	if queries == nil {
		return f.RoundTrip(ctx, tenantID, whole)
	}
	f.sharding.succeeded.Inc()
	f.sharding.queries.Add(float64(n))
	f.sharding.perQuery.Observe(float64(n))
	params := url.Values{}
	for k, v := range vals {
		params[k] = v[:1]
	}
	if params.Get("time") == "" {
		// Every shard evaluates at the same instant, the one the whole
		// query would have.
		params.Set("time", formatMs(time.Now().UnixMilli()))
	}
	partHeader := header.Clone()
	partHeader.Del("Content-Type")
	// The shards' answers are merged in JSON, whatever the client asked.
	partHeader.Del("Accept")
	build := func(q string) *frontendpb.HTTPRequest {
		params.Set("query", q)
		return &frontendpb.HTTPRequest{Method: http.MethodGet, Url: r.URL.Path + "?" + params.Encode(), Headers: frontendpb.ToHeaders(partHeader)}
	}
	reqs := make(map[string]*frontendpb.HTTPRequest, n)
	for _, q := range queries {
		reqs[q] = build(q)
	}
	resps, failed, err := f.runShards(f.withShardSlots(ctx, tenantID), tenantID, queries, func(q string) *frontendpb.HTTPRequest { return reqs[q] })
	if failed != nil || err != nil {
		return failed, err
	}
	merged, err := mergeVectors(resps)
	if err != nil {
		return nil, err
	}
	return &frontendpb.HTTPResponse{Code: http.StatusOK, Body: merged, Headers: jsonHeaders}, nil
}

// mergeVectors joins the vectors of shard queries, which hold different
// series, sorted by labels.
func mergeVectors(resps []*frontendpb.HTTPResponse) ([]byte, error) {
	type sample struct {
		labels labels.Labels
		raw    json.RawMessage
	}
	var (
		all             []sample
		warnings, infos []string
		stats           *sampleStats
	)
	for _, r := range resps {
		var vr struct {
			Status string `json:"status"`
			Data   struct {
				ResultType string            `json:"resultType"`
				Result     []json.RawMessage `json:"result"`
				Stats      *partStats        `json:"stats"`
			} `json:"data"`
			Warnings []string `json:"warnings"`
			Infos    []string `json:"infos"`
		}
		if err := json.Unmarshal(r.Body, &vr); err != nil {
			return nil, fmt.Errorf("decoding a querier's answer: %w", err)
		}
		if vr.Status != "success" || vr.Data.ResultType != "vector" {
			return nil, fmt.Errorf("unexpected answer to a shard of an instant query: status %q, result type %q", vr.Status, vr.Data.ResultType)
		}
		for _, raw := range vr.Data.Result {
			var s struct {
				Metric map[string]string `json:"metric"`
			}
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, fmt.Errorf("decoding a series' labels: %w", err)
			}
			all = append(all, sample{labels: labels.FromMap(s.Metric), raw: raw})
		}
		warnings = appendNew(warnings, vr.Warnings)
		infos = appendNew(infos, vr.Infos)
		if vr.Data.Stats != nil {
			if stats == nil {
				stats = &sampleStats{}
			}
			stats.add(vr.Data.Stats, 0, 0, false)
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return labels.Compare(all[i].labels, all[j].labels) < 0 })
	b := make([]byte, 0, 1024)
	b = append(b, `{"status":"success","data":{"resultType":"vector","result":[`...)
	for i, s := range all {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, s.raw...)
	}
	b = append(b, ']')
	if stats != nil {
		b = stats.appendJSON(b, allSteps)
	}
	b = append(b, '}')
	for _, w := range []struct {
		name string
		vs   []string
	}{{"warnings", warnings}, {"infos", infos}} {
		if len(w.vs) > 0 {
			enc, _ := json.Marshal(w.vs)
			b = append(b, `,"`+w.name+`":`...)
			b = append(b, enc...)
		}
	}
	return append(b, '}'), nil
}
