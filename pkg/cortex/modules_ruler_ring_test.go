package cortex

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// TestRulerRingInAll: with -ruler.enable-sharding, the ruler of -target=all
// joins the ruler ring ACTIVE, /ruler/ring shows it, and the rules API
// still answers an empty list for a tenant with no rule.
func TestRulerRingInAll(t *testing.T) {
	c := startProcess(t, loadConfig(t, "-ruler.enable-sharding=true", "-ruler.ring.instance-id=ruler-x", "-ruler.ring.instance-addr=127.0.0.1"))
	code, body := get(t, c, http.MethodGet, "/ruler/ring")
	if code != http.StatusOK || !strings.Contains(body, "ruler-x") || !strings.Contains(body, "ACTIVE") {
		t.Fatalf("/ruler/ring: %d %s", code, body)
	}
	if code, body := get(t, c, http.MethodGet, "/prometheus/api/v1/rules", "X-Scope-OrgID", "team-a"); code != http.StatusOK || body != `{"status":"success","data":{"groups":[]}}` {
		t.Fatalf("/prometheus/api/v1/rules: %d %s", code, body)
	}
}

// TestRulerRingInMemoryNeedsAll: the in-memory ruler ring cannot be shared
// between processes, so -target=ruler refuses it, naming the flag.
func TestRulerRingInMemoryNeedsAll(t *testing.T) {
	cfg := loadConfig(t, "-target=ruler", "-ring.store=consul", "-ruler.enable-sharding=true")
	_, err := New(cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "-ruler.ring.store=inmemory only works when every component runs in one process (-target=all), but -target=ruler") {
		t.Fatalf("got %v, want the in-memory ruler ring refused for -target=ruler", err)
	}
}
