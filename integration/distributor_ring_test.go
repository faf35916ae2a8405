package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestGlobalIngestionRateStrategy runs two distributors and an ingester,
// each its own process, gossiping over mutual TLS: with
// -distributor.ingestion-rate-limit-strategy=global both join the
// distributor ring and each allows half the tenant's rate; once one stops,
// the other allows the whole rate. Pushes are signed
// (-distributor.sign-write-requests on every process) and verified by the
// ingester.
func TestGlobalIngestionRateStrategy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	t.Parallel()
	c := &cluster{t: t, dir: t.TempDir(), certs: certDir(t)}
	c.client = httpClient(tlsClient(t, clientConfig(c.certs, "client")))
	c.ingDirs = []string{t.TempDir()}
	ing := c.start(
		"-target=ingester",
		"-distributor.replication-factor=1",
		"-ingester.lifecycler.ID=ingester-0",
		"-distributor.sign-write-requests",
		"-ingester.lifecycler.addr=127.0.0.1",
		"-blocks-storage.tsdb.dir="+c.ingDirs[0],
	)
	distributor := func(i int) *testkit.Cortex {
		return c.start(
			"-target=distributor",
			"-distributor.replication-factor=1",
			"-distributor.ingestion-rate-limit-strategy=global",
			"-distributor.sign-write-requests",
			"-distributor.ingestion-rate-limit=100",
			"-distributor.ingestion-burst-size=10",
			"-distributor.ring.store=memberlist",
			"-distributor.ring.heartbeat-period=1s",
			"-distributor.ring.instance-id=distributor-"+itoa(i),
			"-distributor.ring.instance-addr=127.0.0.1",
		)
	}
	d0, d1 := distributor(0), distributor(1)
	for _, p := range []*testkit.Cortex{ing, d0, d1} {
		waitReady(p, c.client)
	}
	c.waitActiveIngesters(d0, 1)
	d0.EventuallyNil(30*time.Second, "/distributor/ring of distributor 0 to list both distributors ACTIVE", func() error {
		code, page := get(t, c.client, "https://"+d0.HTTPAddr+"/distributor/ring")
		if code != http.StatusOK || !strings.Contains(page, "distributor-0") || !strings.Contains(page, "distributor-1") || strings.Count(page, "ACTIVE") < 2 {
			return fmt.Errorf("%d %s", code, page)
		}
		return nil
	})

	now := time.Now().Add(-time.Minute).UnixMilli()
	eleven := &prompb.WriteRequest{}
	for i := range 11 {
		eleven.Timeseries = append(eleven.Timeseries, series("rate_test", i, now, 1))
	}
	// The burst (10) is not divided; the rate is, by the healthy
	// distributors each sees, which the heartbeats make 2 on both.
	c.distributor = d0
	d0.EventuallyNil(30*time.Second, "distributor 0 to allow half the rate", func() error {
		code, body := c.push("tenant-a", eleven)
		if code != http.StatusTooManyRequests || !strings.Contains(body, "ingestion rate limit (50) exceeded while adding 11 samples") {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	if code, body := c.push("tenant-a", &prompb.WriteRequest{Timeseries: eleven.Timeseries[:1]}); code != http.StatusNoContent {
		t.Fatalf("one sample: %d %s", code, body)
	}

	d1.Stop()
	d0.EventuallyNil(30*time.Second, "distributor 0 to allow the whole rate once distributor 1 left", func() error {
		code, body := c.push("tenant-a", eleven)
		if code != http.StatusTooManyRequests || !strings.Contains(body, "ingestion rate limit (100) exceeded") {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
}
