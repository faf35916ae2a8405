package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestRulerHAEvaluationTakesOver: two rulers with
// -ruler.enable-ha-evaluation and -ruler.ring.replication-factor=2 are
// both replicas of every group, and each group is evaluated by one of
// them. When the evaluating ruler is killed, the other takes its groups
// over through the liveness checks, while the dead ruler is still in the
// ring (its heartbeat timeout is ten minutes away).
func TestRulerHAEvaluationTakesOver(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	t.Parallel()
	c, rulers := startShardedRulers(t,
		"-ruler.enable-ha-evaluation=true",
		"-ruler.liveness-check-timeout=500ms",
		"-ruler.ring.replication-factor=2",
		"-ruler.ring.heartbeat-timeout=10m",
	)

	const groups = 6
	for i := range groups {
		body := fmt.Sprintf("name: group-%d\ninterval: 1s\nrules:\n- record: team_ha:g%d\n  expr: vector(%d)\n", i, i, i)
		if code, resp := do(t, c.client, http.MethodPost, "https://"+rulers[0].HTTPAddr+"/api/v1/rules/ns", "team-ha", body); code != http.StatusAccepted {
			t.Fatalf("POST group-%d: %d %s", i, code, resp)
		}
	}
	var evaluating [2]int
	rulers[0].EventuallyNil(60*time.Second, "each group evaluated by one ruler", func() error {
		evaluating = [2]int{ruleGroupsOf(t, c, rulers[0], "team-ha"), ruleGroupsOf(t, c, rulers[1], "team-ha")}
		if evaluating[0]+evaluating[1] != groups {
			return fmt.Errorf("groups evaluated: %d and %d", evaluating[0], evaluating[1])
		}
		return nil
	})
	// Stable: no group is evaluated twice over the next syncs of both.
	syncs := func(p *testkit.Cortex) float64 {
		_, body := get(t, c.client, "https://"+p.HTTPAddr+"/metrics")
		return metricSum(body, "cortex_ruler_sync_rules_total", `reason="periodic"`)
	}
	before := [2]float64{syncs(rulers[0]), syncs(rulers[1])}
	rulers[0].Eventually(30*time.Second, "two more syncs on each ruler", func() bool {
		a, b := ruleGroupsOf(t, c, rulers[0], "team-ha"), ruleGroupsOf(t, c, rulers[1], "team-ha")
		if a+b != groups {
			t.Fatalf("groups evaluated: %d and %d, want %d in all", a, b, groups)
		}
		return syncs(rulers[0]) >= before[0]+2 && syncs(rulers[1]) >= before[1]+2
	})

	victim, survivor := 0, 1
	if evaluating[1] > evaluating[0] {
		victim, survivor = 1, 0
	}
	rulers[victim].Kill()
	rulers[survivor].EventuallyNil(30*time.Second, "the surviving ruler evaluating every group", func() error {
		if n := ruleGroupsOf(t, c, rulers[survivor], "team-ha"); n != groups {
			return fmt.Errorf("it evaluates %d of %d groups", n, groups)
		}
		return nil
	})
	rulers[survivor].WaitLog("no ruler ahead of this one for the group answers as running: evaluating it here")
	code, page := get(t, c.client, "https://"+rulers[survivor].HTTPAddr+"/ruler/ring")
	if code != http.StatusOK || !strings.Contains(page, "ruler-"+itoa(victim)) {
		t.Fatalf("the killed ruler left the ring (%d): the takeover did not need the liveness checks", code)
	}
}
