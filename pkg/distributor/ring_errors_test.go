package distributor

import (
	"net/http"
	"strings"
	"testing"
)

// Ingesters past the heartbeat timeout are a 503 naming them and the
// quorum, not a 500 without a cause.
func TestPushStaleHeartbeats(t *testing.T) {
	c := newCluster(t, clusterOpts{stale: 2})
	r := c.push(manySeries(3))
	b := body(t, r)
	if r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("two of three ingesters stale: got %d %q, want 503", r.StatusCode, b)
	}
	for _, want := range []string{"too many unhealthy ingesters for the quorum", "-ring.heartbeat-timeout", c.ingesters[1].addr, c.ingesters[2].addr} {
		if !strings.Contains(b, want) {
			t.Errorf("body %q does not mention %q", b, want)
		}
	}
	if strings.Contains(b, c.ingesters[0].addr) {
		t.Errorf("body %q names the healthy ingester", b)
	}

	// One stale ingester of three leaves a quorum.
	c = newCluster(t, clusterOpts{stale: 1})
	if r := c.push(manySeries(3)); r.StatusCode != http.StatusNoContent {
		t.Fatalf("one stale ingester: got %d %s, want 204", r.StatusCode, body(t, r))
	}
}
