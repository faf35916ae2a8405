package cortex

import (
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompactorRingPage(t *testing.T) {
	c := startProcess(t, loadConfig(t, "-compactor.sharding-enabled=true", "-compactor.ring.instance-id=compactor-x",
		"-compactor.ring.wait-stability-min-duration=0", "-compactor.ring.instance-addr=127.0.0.1"))
	code, body := get(t, c, http.MethodGet, "/compactor/ring")
	if code != http.StatusOK || !strings.Contains(body, "compactor-x") || !strings.Contains(body, "ACTIVE") {
		t.Fatalf("/compactor/ring: %d %s", code, body)
	}
}

func TestCompactorRingPageWithoutSharding(t *testing.T) {
	c := startProcess(t, loadConfig(t, "-target=compactor"))
	if code, body := get(t, c, http.MethodGet, "/compactor/ring"); code != http.StatusOK || !strings.Contains(body, "sharding is disabled") {
		t.Fatalf("/compactor/ring: %d %s", code, body)
	}
}

func TestCompactorInMemoryRingNeedsAll(t *testing.T) {
	cfg := loadConfig(t, "-target=compactor", "-compactor.sharding-enabled=true")
	_, err := New(cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "-compactor.ring.store=inmemory") {
		t.Fatalf("got %v, want an error naming -compactor.ring.store", err)
	}
}

func TestPurgerTarget(t *testing.T) {
	cfg := loadConfig(t, "-target=purger")
	c := startProcess(t, cfg)
	code, body := get(t, c, http.MethodGet, "/purger/delete_tenant_status", "X-Scope-OrgID", "team-a")
	if code != http.StatusOK || body != `{"tenant_id":"team-a","blocks_deleted":true}`+"\n" {
		t.Fatalf("status: %d %s", code, body)
	}
	if code, body := get(t, c, http.MethodPost, "/purger/delete_tenant", "X-Scope-OrgID", "team-a"); code != http.StatusOK {
		t.Fatalf("delete_tenant: %d %s", code, body)
	}
	mark := filepath.Join(cfg.BlocksStorage.Bucket.Filesystem.Directory, "team-a", "markers", "tenant-deletion-mark.json")
	if _, err := os.Stat(mark); err != nil {
		t.Fatalf("deletion mark: %v", err)
	}
	if code, _ := get(t, c, http.MethodPost, "/purger/delete_tenant"); code != http.StatusUnauthorized {
		t.Fatalf("delete_tenant without X-Scope-OrgID: %d, want 401", code)
	}
}
