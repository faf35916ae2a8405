package integration

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestStoreGatewayQueryStatsAreLogged: in one process with mutual TLS on
// every link, a query reading shipped blocks logs each store-gateway
// Series call's statistics in the querier (-querier.store-gateway-query-stats-enabled),
// and the query-frontend's "query stats" line counts the postings the
// store-gateway touched (-frontend.query-stats-enabled).
func TestStoreGatewayQueryStatsAreLogged(t *testing.T) {
	t.Parallel()
	certs := certDir(t)
	p, c := startBlocksProcess(t, certs,
		"-blocks-storage.filesystem.dir="+filepath.Join(t.TempDir(), "bucket"),
		"-blocks-storage.bucket-store.sync-dir="+t.TempDir(),
		"-blocks-storage.bucket-store.sync-interval=1s",
		"-compactor.data-dir="+t.TempDir(),
		"-compactor.cleanup-interval=1s",
		"-frontend.query-stats-enabled=true",
		"-log.level=info",
	)
	begin := time.Now().Add(-15 * time.Minute).Truncate(time.Minute)
	c.pushScrapes("team-s", "sg_stats", begin.UnixMilli(), 0, 10*4, 2)
	c.flush(p)
	params := url.Values{
		"query": {`sum by (series) (count_over_time(sg_stats[1m]))`},
		"start": {secs(begin.Add(time.Minute).UnixMilli())},
		"end":   {secs(begin.Add(10 * time.Minute).UnixMilli())},
		"step":  {"60"},
	}
	call := regexp.MustCompile(`msg="store gateway series request stats" .*blocks_queried=([1-9][0-9]*) .*postings_touched=([1-9][0-9]*) postings_touched_size_sum=([0-9]+)`)
	frontend := regexp.MustCompile(`msg="query stats" .*store_gateway_touched_postings_count=([1-9][0-9]*) store_gateway_touched_posting_bytes=([0-9]+)`)
	p.EventuallyNil(60*time.Second, "a query to read the store-gateway and log its statistics", func() error {
		// The querier reads the blocks once the store-gateway has loaded
		// those the compactor's bucket index lists.
		if r, err := c.tryQuery("team-s", "query_range", params); err != nil || r.Status != "success" || len(r.Data.Result) != 2 {
			return fmt.Errorf("query: %+v, %v", r, err)
		}
		out := p.Output()
		m := call.FindStringSubmatch(out)
		if m == nil {
			return fmt.Errorf("no store gateway series request stats line")
		}
		if m[3] != fmt.Sprint(4*statsCount(m[2])) {
			return fmt.Errorf("postings_touched=%s with postings_touched_size_sum=%s, want 4 bytes each", m[2], m[3])
		}
		f := frontend.FindStringSubmatch(out)
		if f == nil {
			return fmt.Errorf("no query stats line with the store-gateway's postings:\n%s", grepLines(out, "query stats"))
		}
		if f[2] != fmt.Sprint(4*statsCount(f[1])) {
			return fmt.Errorf("store_gateway_touched_postings_count=%s with store_gateway_touched_posting_bytes=%s", f[1], f[2])
		}
		return nil
	})
	if strings.Contains(p.Output(), "reading a store-gateway's query statistics") {
		t.Fatalf("a store-gateway's statistics did not decode:\n%s", grepLines(p.Output(), "query statistics"))
	}
}

func statsCount(s string) int {
	var n int
	_, _ = fmt.Sscan(s, &n)
	return n
}
