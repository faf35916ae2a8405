package distributor

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/grafana/dskit/concurrency"
	"github.com/grafana/dskit/ring"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

// UserStats is one tenant's ingestion, summed over the ingesters. The JSON
// names are Cortex's.
type UserStats struct {
	IngestionRate     float64 `json:"ingestionRate"`
	NumSeries         uint64  `json:"numSeries"`
	APIIngestionRate  float64 `json:"APIIngestionRate"`
	RuleIngestionRate float64 `json:"RuleIngestionRate"`
}

// UserIDStats is one row of /distributor/all_user_stats.
type UserIDStats struct {
	UserID string `json:"userID"`
	UserStats
}

// statsConcurrency bounds the UserStats calls in flight for one page.
const statsConcurrency = 16

// AllUserStatsHandler serves /distributor/all_user_stats: per tenant, the
// series and ingestion rates summed over every healthy ingester, as an
// HTML table, or as Cortex's JSON with Accept: application/json. As in
// Cortex, the sums count each replica: they are not divided by the
// replication factor.
//
// Cortex asks each ingester for all its tenants at once; the ingester API
// here answers per tenant, so the page lists the tenants that pushed
// through this distributor within the last hour and asks each ingester
// about each of them. An ingester that does not answer is named on the
// page (HTML) and left out of the sums. The page needs no tenant.
func (d *Distributor) AllUserStatsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stats, errs := d.allUserStats(r.Context())
		if strings.Contains(r.Header.Get("Accept"), "json") {
			w.Header().Set("Content-Type", "application/json")
			if err := json.NewEncoder(w).Encode(stats); err != nil {
				d.logger.Warn("writing all_user_stats", "err", err)
			}
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := statsPage.Execute(w, struct {
			Now               time.Time
			ReplicationFactor int
			Stats             []UserIDStats
			Errors            []string
		}{d.now(), d.ring.ReplicationFactor(), stats, errs}); err != nil {
			d.logger.Warn("writing all_user_stats", "err", err)
		}
	})
}

func (d *Distributor) allUserStats(ctx context.Context) ([]UserIDStats, []string) {
	ids := d.seenTenants()
	var (
		mu     sync.Mutex
		totals = make([]UserStats, len(ids))
		errs   []string
	)
	rs, err := d.ring.GetAllHealthy(ring.Read)
	if err != nil {
		errs = append(errs, "listing ingesters: "+err.Error())
	}
	jobs := len(ids) * len(rs.Instances)
	_ = concurrency.ForEachJob(ctx, jobs, statsConcurrency, func(ctx context.Context, j int) error {
		i, inst := j/len(rs.Instances), rs.Instances[j%len(rs.Instances)]
		resp, err := d.userStats(ctx, ids[i], inst.Addr)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Sprintf("ingester %s (%s), tenant %q: %v", inst.Id, inst.Addr, ids[i], err))
			return nil // the other ingesters still count
		}
		t := &totals[i]
		t.IngestionRate += resp.IngestionRate
		t.NumSeries += resp.NumSeries
		t.APIIngestionRate += resp.ApiIngestionRate
		t.RuleIngestionRate += resp.RuleIngestionRate
		return nil
	})
	out := make([]UserIDStats, len(ids))
	for i, id := range ids {
		out[i] = UserIDStats{UserID: id, UserStats: totals[i]}
	}
	// Biggest tenants first, as Cortex sorts them.
	slices.SortStableFunc(out, func(a, b UserIDStats) int {
		if a.NumSeries != b.NumSeries {
			if a.NumSeries > b.NumSeries {
				return -1
			}
			return 1
		}
		return strings.Compare(a.UserID, b.UserID)
	})
	slices.Sort(errs)
	return out, errs
}

func (d *Distributor) userStats(ctx context.Context, userID, addr string) (*client.UserStatsResponse, error) {
	c, err := d.pool.Get(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(tenant.Inject(ctx, userID), d.cfg.RemoteTimeout)
	defer cancel()
	return c.UserStats(ctx, &client.UserStatsRequest{})
}

var statsPage = template.Must(template.New("all_user_stats").Parse(`<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>Cortex Ingester Stats</title>
</head>
<body>
<h1>Cortex Ingester Stats</h1>
<p>Current time: {{ .Now }}</p>
<p><b>NB stats do not account for replication factor, which is currently set to {{ .ReplicationFactor }}</b></p>
{{ with .Errors }}<p><b>Some ingesters did not answer; their share is missing from the sums:</b></p>
<ul>{{ range . }}<li>{{ . }}</li>{{ end }}</ul>{{ end }}
<table border="1">
<thead>
<tr><th>User</th><th># Series</th><th>Total Ingest Rate</th><th>API Ingest Rate</th><th>Rule Ingest Rate</th></tr>
</thead>
<tbody>
{{ range .Stats }}<tr><td>{{ .UserID }}</td><td align="right">{{ .NumSeries }}</td><td align="right">{{ printf "%.2f" .IngestionRate }}</td><td align="right">{{ printf "%.2f" .APIIngestionRate }}</td><td align="right">{{ printf "%.2f" .RuleIngestionRate }}</td></tr>
{{ end }}</tbody>
</table>
</body>
</html>
`))
