package integration

import (
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/cache/cachetest"
	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestRedisCachesMutualTLS runs one process whose query-frontend results
// cache and store-gateway index and chunks caches are a real redis-server
// serving mutual TLS only, with a password: the caches' certificates come
// from the same private CA as every other link's, and a repeated query is
// answered from redis, as Cortex's cache metrics show.
func TestRedisCachesMutualTLS(t *testing.T) {
	t.Parallel()
	pki := testkit.NewPKI(t, "root")
	pki.Issue(t, "server", certgen.Options{CommonName: "localhost", DNSNames: []string{"server", "localhost"}, IPs: testkit.LoopbackIPs()})
	pki.Issue(t, "client", certgen.Options{DNSNames: []string{"client", "localhost"}, IPs: testkit.LoopbackIPs()})
	certs := pki.Dir
	const password = "redis-cache-secret"
	r := cachetest.StartRedisTLS(t, cachetest.RedisOptions{PKI: pki, Password: password})

	redisFlags := func(prefix, addrFlag string) []string {
		return []string{
			"-" + prefix + "." + addrFlag + "=" + r.Addr,
			"-" + prefix + ".password=" + password,
			"-" + prefix + ".tls-enabled=true",
			"-" + prefix + ".tls-ca-path=" + filepath.Join(certs, "root.crt"),
			"-" + prefix + ".tls-cert-path=" + filepath.Join(certs, "client.crt"),
			"-" + prefix + ".tls-key-path=" + filepath.Join(certs, "client.key"),
		}
	}
	flags := []string{
		"-blocks-storage.filesystem.dir=" + filepath.Join(t.TempDir(), "bucket"),
		"-blocks-storage.bucket-store.sync-dir=" + t.TempDir(),
		"-blocks-storage.bucket-store.sync-interval=1s",
		"-compactor.data-dir=" + t.TempDir(),
		"-compactor.cleanup-interval=1s",
		"-frontend.cache-results=true",
		"-blocks-storage.bucket-store.index-cache.backend=redis",
		"-blocks-storage.bucket-store.chunks-cache.backend=redis",
	}
	flags = append(flags, redisFlags("frontend.redis", "endpoint")...)
	flags = append(flags, redisFlags("blocks-storage.bucket-store.index-cache.redis", "addresses")...)
	flags = append(flags, redisFlags("blocks-storage.bucket-store.chunks-cache.redis", "addresses")...)
	p, c := startBlocksProcess(t, certs, flags...)

	begin := time.Now().Add(-15 * time.Minute).Truncate(time.Minute)
	c.pushScrapes("team-r", "redis_history", begin.UnixMilli(), 0, 10*4, 2)
	c.flush(p)
	p.EventuallyNil(30*time.Second, "the shipped blocks loaded by the store-gateway", func() error {
		if got := metricOf(t, c.client, p, "cortex_bucket_store_blocks_loaded"); got < 1 {
			return fmt.Errorf("cortex_bucket_store_blocks_loaded %v", got)
		}
		return nil
	})

	rangeOf := func(query string) url.Values {
		return url.Values{
			"query": {query},
			"start": {secs(begin.Add(time.Minute).UnixMilli())},
			"end":   {secs(begin.Add(10 * time.Minute).UnixMilli())},
			"step":  {"60"},
		}
	}
	// Each query is new to the results cache, so each reaches the
	// store-gateway; their selector is the same, so its postings, once
	// written to redis, are read back from it.
	n := 0
	p.EventuallyNil(30*time.Second, "index cache hits in redis", func() error {
		n++
		res, err := c.tryQuery("team-r", "query_range", rangeOf(fmt.Sprintf(`sum by (series) (count_over_time(redis_history[1m])) + %d`, n)))
		if err != nil {
			return err
		}
		if len(res.Data.Result) != 2 {
			return fmt.Errorf("%d series, want 2", len(res.Data.Result))
		}
		_, metrics := get(t, c.client, "https://"+p.HTTPAddr+"/metrics")
		if got := metricSum(metrics, "thanos_cache_redis_hits_total", `name="index-cache"`); got < 1 {
			return fmt.Errorf("thanos_cache_redis_hits_total{name=\"index-cache\"} = %v", got)
		}
		if got := metricSum(metrics, "thanos_store_index_cache_hits_total", `item_type="ExpandedPostings"`); got < 1 {
			return fmt.Errorf("thanos_store_index_cache_hits_total = %v", got)
		}
		return nil
	})

	// The same query again: the results cache answers it from redis once
	// the first answer is written there (in the background).
	repeated := rangeOf(`max by (series) (max_over_time(redis_history[1m]))`)
	first := c.query("team-r", "query_range", repeated)
	p.EventuallyNil(30*time.Second, "results cache hits in redis", func() error {
		again, err := c.tryQuery("team-r", "query_range", repeated)
		if err != nil {
			return err
		}
		if fmt.Sprint(again.Data) != fmt.Sprint(first.Data) {
			return fmt.Errorf("answer from the cache %+v, want %+v", again.Data, first.Data)
		}
		_, metrics := get(t, c.client, "https://"+p.HTTPAddr+"/metrics")
		if got := metricSum(metrics, "cortex_cache_hits", `name="frontend.redis"`); got < 1 {
			return fmt.Errorf("cortex_cache_hits{name=\"frontend.redis\"} = %v", got)
		}
		if got := metricSum(metrics, "cortex_rediscache_request_duration_seconds_count", `method="RedisCache.MSet",name="frontend.redis",status_code="200"`); got < 1 {
			return fmt.Errorf("no successful write to redis counted:\n%s", grepLines(metrics, "cortex_rediscache_request_duration_seconds_count"))
		}
		return nil
	})
	_, metrics := get(t, c.client, "https://"+p.HTTPAddr+"/metrics")
	if got := metricSum(metrics, "thanos_redis_operations_total", `name="chunks-cache"`); got < 1 {
		t.Errorf("no chunks cache operation in redis:\n%s", grepLines(metrics, "thanos_redis_operations_total"))
	}
}
