package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestStoreGatewaysShardBlocks: two store-gateways share the bucket's
// blocks on a gossiped ring at replication factor 1, over mutual TLS; a
// querier reading only the bucket (the data is older than
// -querier.query-ingesters-within) gets every sample from the two. When
// one store-gateway leaves, the other takes over its blocks, and no query
// meanwhile answers with samples missing: each either has them all or
// fails naming the blocks it could not read.
func TestStoreGatewaysShardBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes")
	}
	t.Parallel()
	c := &cluster{t: t, dir: t.TempDir(), certs: certDir(t)}
	c.client = httpClient(tlsClient(t, clientConfig(c.certs, "client")))
	bucketDir := filepath.Join(c.dir, "bucket")
	shared := []string{
		"-blocks-storage.filesystem.dir=" + bucketDir,
		"-blocks-storage.bucket-store.sync-interval=1s",
		"-store-gateway.sharding-enabled",
		"-store-gateway.sharding-ring.store=memberlist",
		"-store-gateway.sharding-ring.replication-factor=1",
		"-store-gateway.sharding-ring.heartbeat-period=1s",
		"-store-gateway.sharding-ring.wait-stability-min-duration=0s",
		"-store-gateway.sharding-ring.instance-addr=127.0.0.1",
	}
	writer := c.start(append([]string{"-target=ingester,distributor,compactor",
		"-distributor.replication-factor=1",
		"-ingester.lifecycler.ID=ingester-0", "-ingester.lifecycler.addr=127.0.0.1",
		"-blocks-storage.tsdb.dir=" + t.TempDir(),
		"-blocks-storage.tsdb.block-ranges-period=1m",
		"-blocks-storage.tsdb.ship-interval=1s",
		"-blocks-storage.tsdb.head-compaction-interval=1s",
		"-compactor.data-dir=" + t.TempDir(),
		"-compactor.cleanup-interval=1s",
	}, shared...)...)
	c.distributor = writer
	var gateways []*testkit.Cortex
	for i := range 2 {
		gateways = append(gateways, c.start(append([]string{"-target=store-gateway",
			"-store-gateway.sharding-ring.instance-id=store-gateway-" + itoa(i),
			"-blocks-storage.bucket-store.sync-dir=" + t.TempDir(),
		}, shared...)...))
	}
	c.querier = c.start(append([]string{"-target=querier",
		"-querier.query-ingesters-within=5m",
		"-querier.store-gateway-client.tls-cert-path=" + filepath.Join(c.certs, "client.crt"),
		"-querier.store-gateway-client.tls-key-path=" + filepath.Join(c.certs, "client.key"),
		"-querier.store-gateway-client.tls-ca-path=" + filepath.Join(c.certs, "root.crt"),
		"-querier.store-gateway-client.tls-server-name=localhost",
	}, shared...)...)
	for _, p := range append([]*testkit.Cortex{writer, c.querier}, gateways...) {
		waitReady(p, c.client)
	}
	c.waitActiveIngesters(writer, 1)

	begin := time.Now().Add(-20 * time.Minute).Truncate(time.Minute)
	c.pushScrapes("team-s", "sharded", begin.UnixMilli(), 0, 10*4, 1) // ten one-minute blocks
	c.flush(writer)
	// The querier does not require blocks uploaded within three sync
	// intervals (3s here): store-gateways may not have loaded them yet,
	// and the ingesters still hold their samples.
	uploaded := time.Now()

	loaded := func(p *testkit.Cortex) float64 {
		return metricOf(t, c.client, p, "cortex_bucket_store_blocks_loaded")
	}
	c.querier.EventuallyNil(60*time.Second, "both store-gateways loading a share of the ten blocks", func() error {
		a, b := loaded(gateways[0]), loaded(gateways[1])
		if a+b != 10 || a == 0 || b == 0 {
			return fmt.Errorf("blocks loaded: %v and %v", a, b)
		}
		return nil
	})
	code, page := get(t, c.client, "https://"+gateways[0].HTTPAddr+"/store-gateway/ring")
	if code != http.StatusOK || !strings.Contains(page, "store-gateway-0") || !strings.Contains(page, "store-gateway-1") {
		t.Fatalf("GET /store-gateway/ring: %d, want both instances listed:\n%s", code, page)
	}

	const want = 2 * 10 * 4
	params := url.Values{"query": {`sum(count_over_time(sharded[10m]))`}, "time": {secs(begin.Add(10*time.Minute).UnixMilli() - 1)}}
	// countOrError runs the query: the count on success, the error text
	// otherwise.
	countOrError := func() (int, string) {
		code, body := do(t, c.client, http.MethodGet, "https://"+c.querier.HTTPAddr+"/prometheus/api/v1/query?"+params.Encode(), "team-s", nil)
		if code != http.StatusOK {
			return -1, fmt.Sprintf("%d %s", code, body)
		}
		var res promResponse
		if err := json.Unmarshal([]byte(body), &res); err != nil {
			t.Fatalf("query answer %q: %v", body, err)
		}
		if len(res.Data.Result) != 1 {
			return 0, ""
		}
		n, _ := strconv.Atoi(res.Data.Result[0].Value[1].(string))
		return n, ""
	}
	c.querier.EventuallyNil(30*time.Second, "every sample from the two store-gateways", func() error {
		if n, errText := countOrError(); n != want {
			return fmt.Errorf("count %d (%s), want %d", n, errText, want)
		}
		return nil
	})

	// One leaves the ring; the other loads its blocks. Meanwhile every
	// answer is whole or an error, once the blocks are past the querier's
	// upload grace.
	c.querier.Eventually(30*time.Second, "the blocks to be older than three sync intervals", func() bool {
		return time.Since(uploaded) > 4*time.Second
	})
	gateways[1].Stop()
	c.querier.EventuallyNil(60*time.Second, "the remaining store-gateway serving all ten blocks", func() error {
		n, errText := countOrError()
		switch {
		case n >= 0 && n != want:
			t.Fatalf("a query answered %d samples of %d: samples silently missing", n, want)
		case n < 0 && !strings.Contains(errText, "consistency check failed because some blocks were not queried"):
			t.Fatalf("a query failed without naming the missing blocks: %s", errText)
		}
		if got := loaded(gateways[0]); got != 10 || n != want {
			return fmt.Errorf("blocks loaded %v, count %d (%s)", got, n, errText)
		}
		return nil
	})
}
