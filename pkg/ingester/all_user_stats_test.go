package ingester

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAllUserStatsHandler(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	h.mustPush("small", floats(series("a"), float64(base), 1))
	h.mustPush("big", floats(series("a"), float64(base), 1), floats(series("b"), float64(base), 2))

	req := httptest.NewRequest(http.MethodGet, "/ingester/all_user_stats", nil)
	req.Header.Set("Accept", "application/json")
	rec := httptest.NewRecorder()
	h.ing.AllUserStatsHandler().ServeHTTP(rec, req)
	var got []TenantStats
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, rec.Body.String())
	}
	if len(got) != 2 || got[0].UserID != "big" || got[0].NumSeries != 2 || got[1].UserID != "small" || got[1].NumSeries != 1 {
		t.Errorf("JSON stats %+v, want big (2 series) then small (1)", got)
	}
	if !strings.Contains(rec.Body.String(), `"userID":"big","ingestionRate":0,"numSeries":2,"APIIngestionRate":0,"RuleIngestionRate":0,"loadedBlocks":0`) {
		t.Errorf("JSON not in Cortex's names: %s", rec.Body.String())
	}

	rec = httptest.NewRecorder()
	h.ing.AllUserStatsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ingester/all_user_stats", nil))
	if body := rec.Body.String(); !strings.Contains(body, "<td>big</td><td align=\"right\">0</td><td align=\"right\">2</td>") || !strings.Contains(rec.Header().Get("Content-Type"), "text/html") {
		t.Errorf("HTML page:\n%s", body)
	}
}
