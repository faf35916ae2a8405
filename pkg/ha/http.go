package ha

import (
	"cmp"
	"html/template"
	"net/http"
	"slices"
	"time"
)

func sortElections(es []Election) {
	slices.SortFunc(es, func(a, b Election) int {
		return cmp.Or(cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.Cluster, b.Cluster))
	})
}

var page = template.Must(template.New("ha").Parse(`<!DOCTYPE html>
<html><head><meta charset="UTF-8"><title>Cortex HA Tracker Status</title></head>
<body><h1>Cortex HA Tracker Status</h1>
<p>Current time: {{.Now}}</p>
<table border="1"><thead><tr><th>User ID</th><th>Cluster</th><th>Replica</th><th>Elected Time</th><th>Time Until Update</th><th>Time Until Failover</th></tr></thead>
<tbody>{{range .Rows}}<tr><td>{{.UserID}}</td><td>{{.Cluster}}</td><td>{{.Replica}}</td><td>{{.ElectedAt}}</td><td>{{.UpdateIn}}</td><td>{{.FailoverIn}}</td></tr>{{end}}</tbody>
</table></body></html>`))

type row struct {
	UserID, Cluster, Replica string
	ElectedAt                string
	UpdateIn, FailoverIn     time.Duration
}

// ServeHTTP serves /distributor/ha_tracker: every tenant's elected
// replicas.
func (t *Tracker) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	now := t.now()
	var rows []row
	for _, e := range t.Elections() {
		rows = append(rows, row{
			UserID: e.UserID, Cluster: e.Cluster, Replica: e.Replica,
			ElectedAt:  e.ReceivedAt.UTC().Format(time.RFC3339Nano),
			UpdateIn:   e.ReceivedAt.Add(t.cfg.UpdateTimeout).Sub(now).Truncate(time.Second),
			FailoverIn: e.ReceivedAt.Add(t.cfg.FailoverTimeout).Sub(now).Truncate(time.Second),
		})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := page.Execute(w, struct {
		Now  string
		Rows []row
	}{now.UTC().Format(time.RFC3339), rows}); err != nil {
		t.logger.Warn("rendering /distributor/ha_tracker", "err", err)
	}
}
