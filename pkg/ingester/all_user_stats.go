package ingester

import (
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"
)

// TenantStats is one row of /ingester/all_user_stats: a tenant's series
// and ingestion on this ingester. The JSON names are Cortex's. The rates
// are the tenant's moving average over -ingester.rate-update-period; this
// ingester does not tell rule results from other pushes, so the API rate
// is the whole rate and the rule rate 0, as its UserStats call answers.
type TenantStats struct {
	UserID            string  `json:"userID"`
	IngestionRate     float64 `json:"ingestionRate"`
	NumSeries         uint64  `json:"numSeries"`
	APIIngestionRate  float64 `json:"APIIngestionRate"`
	RuleIngestionRate float64 `json:"RuleIngestionRate"`
	LoadedBlocks      uint64  `json:"loadedBlocks"`
}

// AllUserStatsHandler serves /ingester/all_user_stats as Cortex does: every
// tenant whose TSDB this ingester holds, the most series first, as an HTML
// table or, with Accept: application/json, as Cortex's JSON.
func (i *Ingester) AllUserStatsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stats := i.tenantStats()
		if strings.Contains(r.Header.Get("Accept"), "json") {
			w.Header().Set("Content-Type", "application/json")
			if err := json.NewEncoder(w).Encode(stats); err != nil {
				i.logger.Warn("writing all_user_stats", "err", err)
			}
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := tenantStatsPage.Execute(w, struct {
			Now   time.Time
			Stats []TenantStats
		}{time.Now(), stats}); err != nil {
			i.logger.Warn("writing all_user_stats", "err", err)
		}
	})
}

func (i *Ingester) tenantStats() []TenantStats {
	i.closeMu.RLock()
	defer i.closeMu.RUnlock()
	if i.closed {
		return []TenantStats{}
	}
	tsdbs := i.allTSDBs()
	out := make([]TenantStats, 0, len(tsdbs))
	for _, u := range tsdbs {
		rate := u.rate.rate()
		out = append(out, TenantStats{
			UserID:           u.id,
			IngestionRate:    rate,
			APIIngestionRate: rate,
			NumSeries:        u.db.Head().NumSeries(),
			LoadedBlocks:     uint64(len(u.db.Blocks())),
		})
	}
	slices.SortStableFunc(out, func(a, b TenantStats) int {
		switch {
		case a.NumSeries > b.NumSeries:
			return -1
		case a.NumSeries < b.NumSeries:
			return 1
		}
		return strings.Compare(a.UserID, b.UserID)
	})
	return out
}

var tenantStatsPage = template.Must(template.New("all_user_stats").Parse(`<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Cortex Ingester Stats</title></head>
<body>
<h1>Cortex Ingester Stats</h1>
<p>Current time: {{.Now}}</p>
<table border="1">
<thead><tr><th>User</th><th>Loaded Blocks</th><th># Series</th><th>Total Ingest Rate</th><th>API Ingest Rate</th><th>Rule Ingest Rate</th></tr></thead>
<tbody>
{{range .Stats}}<tr><td>{{.UserID}}</td><td align="right">{{.LoadedBlocks}}</td><td align="right">{{.NumSeries}}</td><td align="right">{{printf "%.2f" .IngestionRate}}</td><td align="right">{{printf "%.2f" .APIIngestionRate}}</td><td align="right">{{printf "%.2f" .RuleIngestionRate}}</td></tr>
{{end}}</tbody>
</table>
</body>
</html>
`))
