package compactor

import (
	"context"
	"flag"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/storage/bucket"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestCompactOnS3 runs compaction, cleanup and the bucket index against a
// real S3 server (MinIO over TLS), whose listings differ from the
// filesystem bucket's: directories are common prefixes, not files.
func TestCompactOnS3(t *testing.T) {
	m := testkit.StartMinIO(t)
	var bcfg bucket.Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	bcfg.RegisterFlagsWithPrefix("blocks-storage.", fs)
	if err := fs.Parse([]string{
		"-blocks-storage.backend=s3",
		"-blocks-storage.s3.endpoint=" + m.Endpoint,
		"-blocks-storage.s3.bucket-name=" + m.Bucket,
		"-blocks-storage.s3.access-key-id=" + m.AccessKey,
		"-blocks-storage.s3.secret-access-key=" + m.SecretKey,
		"-blocks-storage.s3.http.tls-ca-path=" + m.PKI.CAPath,
	}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	bkt, err := bucket.NewClient(ctx, bcfg, "compactor", tlsconfig.NewLoader(discard, nil), discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bkt.Close() })

	const tenant = "team-a"
	shipRF3(t, bkt, tenant)

	cfg := testConfig(t)
	cfg.DeletionDelay = time.Second
	c, err := New(cfg, bkt, discard, prometheus.NewPedanticRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	live := liveBlocks(t, bkt, tenant)
	if len(live) != 2 || live[0].MaxTime-live[0].MinTime != 12*hour {
		t.Fatalf("live blocks after one pass on S3: %v, want 0h-12h and 12h-14h", live)
	}
	perSeries2h := int(2 * hour / testStep)
	if samples, _ := sampleCount(t, bkt, tenant, live[0].ID); samples != testSeries*6*perSeries2h {
		t.Fatalf("0h-12h block holds %d samples, want %d", samples, testSeries*6*perSeries2h)
	}
	want := []string{live[0].ID.String(), live[1].ID.String()}
	slices.Sort(want)
	testkit.Eventually(t, 30*time.Second, "marked blocks deleted from S3", func() bool {
		if err := c.Cleanup(ctx); err != nil {
			t.Fatal(err)
		}
		return slices.Equal(blockDirs(t, bkt, tenant), want)
	})
	idx, err := bucketindex.ReadIndex(ctx, bkt, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Blocks) != 2 || len(idx.BlockDeletionMarks) != 0 {
		t.Fatalf("index on S3: %d blocks, %d marks; want 2 and 0", len(idx.Blocks), len(idx.BlockDeletionMarks))
	}
}
