package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// TestTenantFederationRegexMatcher: with
// -tenant-federation.regex-matcher-enabled, a query whose X-Scope-OrgID is
// team-.* reads every team- tenant with blocks in the bucket, through the
// query-frontend over mutual TLS; a certificate bound to team-a alone is
// refused the expression, which matches team-b too.
func TestTenantFederationRegexMatcher(t *testing.T) {
	t.Parallel()
	certs, allow := tenantACerts(t, "team-a")
	proc, c := startBlocksProcess(t, certs,
		"-auth.client-tenants-file="+allow,
		"-tenant-federation.enabled",
		"-tenant-federation.regex-matcher-enabled",
		"-tenant-federation.user-sync-interval=1s",
		"-blocks-storage.filesystem.dir="+t.TempDir(),
		"-blocks-storage.bucket-store.sync-dir="+t.TempDir(),
		"-compactor.data-dir="+t.TempDir(),
	)
	now := time.Now().UnixMilli()
	for _, tenantID := range []string{"team-a", "team-b", "other"} {
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("fed", 0, now, 1)}}
		if code, body := c.push(tenantID, req); code != http.StatusNoContent {
			t.Fatalf("push as %s: %d %s", tenantID, code, body)
		}
	}
	// The tenants are known once their blocks are in the bucket.
	c.flush(proc)
	at := strconv.FormatFloat(float64(now)/1000, 'f', 3, 64)
	params := url.Values{"query": {"count by (__tenant_id__) (fed)"}, "time": {at}}
	proc.EventuallyNil(60*time.Second, "team-.* reads team-a and team-b", func() error {
		res, err := c.tryQuery("team-.*", "query", params)
		if err != nil {
			return err
		}
		var got []string
		for _, r := range res.Data.Result {
			got = append(got, r.Metric["__tenant_id__"])
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"team-a", "team-b"}) {
			return fmt.Errorf("tenants read: %q", got)
		}
		return nil
	})

	req, _ := http.NewRequest(http.MethodGet, "https://"+proc.HTTPAddr+"/prometheus/api/v1/query?"+params.Encode(), nil)
	req.Header.Set("X-Scope-OrgID", "team-.*")
	resp, err := httpClient(tlsClient(t, clientConfig(certs, "tenant-a"))).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 512)
	n, _ := resp.Body.Read(body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body[:n]), `client "tenant-a" may not act for tenant "team-b"`) {
		t.Fatalf("tenant-a's query of team-.*: %d %s, want 403 naming team-b", resp.StatusCode, body[:n])
	}
}
