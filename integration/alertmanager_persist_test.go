package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestAlertmanagerStatePersistedAndRestored: two alertmanagers at
// replication factor 2 with -alertmanager.persist-interval=1s store
// tenant-a's state in the bucket (alertmanager/tenant-a/fullstate). After
// both are killed, a new alertmanager with an empty data directory and no
// other replica to ask starts the tenant with the silence read back from
// the bucket.
func TestAlertmanagerStatePersistedAndRestored(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three alertmanager processes")
	}
	t.Parallel()
	c := newAMCluster(t)
	hook := testkit.NewAlertWebhook(t)
	flags := []string{"-alertmanager.sharding-ring.replication-factor=2", "-alertmanager.persist-interval=1s"}
	am := []*testkit.Cortex{c.start(0, "alertmanager", flags...), c.start(1, "alertmanager", flags...)}
	for _, p := range am {
		c.waitRing(p, "am-0", "am-1")
	}
	cfg := fmt.Sprintf("alertmanager_config: |\n%s\n", indent(hook.Config("/a"), "  "))
	if code, body := do(t, c.client, http.MethodPost, "https://"+am[0].HTTPAddr+"/api/v1/alerts", "tenant-a", cfg); code != http.StatusCreated {
		t.Fatalf("POST /api/v1/alerts: %d %s", code, body)
	}
	for _, p := range am {
		p.Eventually(30*time.Second, "tenant-a running", func() bool { return metricOf(t, c.client, p, "cortex_alertmanager_tenants") == 1 })
	}
	id := c.createSilence(am[0], "Maintenance")
	c.waitSilence(am[1], id)
	persisted := func() float64 {
		return metricOf(t, c.client, am[0], `alertmanager_state_persist_total{user="tenant-a"}`) + metricOf(t, c.client, am[1], `alertmanager_state_persist_total{user="tenant-a"}`)
	}
	// Two more writes than now: one at least began after the silence.
	before := persisted()
	am[0].Eventually(30*time.Second, "tenant-a's state stored twice more", func() bool { return persisted() >= before+2 })
	state := filepath.Join(c.bucket, "alertmanager", "tenant-a", "fullstate")
	if st, err := os.Stat(state); err != nil || st.Size() == 0 {
		t.Fatalf("the stored state %s: %v", state, err)
	}
	for _, p := range am {
		p.Kill()
	}

	c.seed = "" // a new gossip cluster: the killed ones are gone
	fresh := c.start(2, "alertmanager", flags...)
	fresh.Eventually(30*time.Second, "tenant-a running on the new alertmanager", func() bool {
		return metricOf(t, c.client, fresh, "cortex_alertmanager_tenants") == 1
	})
	fresh.WaitLog("state read from the alertmanager storage")
	ids, err := c.silenceIDs(fresh)
	if err != nil || !slices.Contains(ids, id) {
		t.Fatalf("the new alertmanager's silences: %v %v", ids, err)
	}
	c.postAlert(fresh, "Maintenance")
	c.postAlert(fresh, "AfterRestore")
	hook.WaitFor(t, "/a", "AfterRestore")
	waitSilenced(t, fresh, c.client, "tenant-a")
	hook.Never(t, "/a", "Maintenance")
}
