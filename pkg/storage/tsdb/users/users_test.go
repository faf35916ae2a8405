package users

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func upload(t *testing.T, bkt objstore.Bucket, name, content string) {
	t.Helper()
	if err := bkt.Upload(context.Background(), name, strings.NewReader(content)); err != nil {
		t.Fatal(err)
	}
}

// testBucket holds team-a (active), team-b (marked for deletion) and
// team-c (deleted: only its global markers folder left).
func testBucket(t *testing.T) objstore.Bucket {
	bkt := objstore.NewInMemBucket()
	upload(t, bkt, "team-a/01J0000000000000000000000A/meta.json", "{}")
	upload(t, bkt, "team-b/01J0000000000000000000000B/meta.json", "{}")
	if err := bucketindex.WriteTenantDeletionMark(context.Background(), bkt, "team-b", bucketindex.NewTenantDeletionMark(time.Now())); err != nil {
		t.Fatal(err)
	}
	upload(t, bkt, bucketindex.GlobalMarkersDir+"/team-c/tenant-deletion-mark.json", "{}")
	return bkt
}

func scan(t *testing.T, s Scanner) [3][]string {
	t.Helper()
	a, b, c, err := s.ScanUsers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return [3][]string{a, b, c}
}

func want(active, deleting, deleted []string) [3][]string {
	return [3][]string{active, deleting, deleted}
}

func equal(a, b [3][]string) bool {
	for i := range a {
		if !slices.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestListScanner(t *testing.T) {
	bkt := testBucket(t)
	upload(t, bkt, IndexFilename, "not a tenant")
	got := scan(t, NewListScanner(bkt))
	if w := want([]string{"team-a"}, []string{"team-b"}, []string{"team-c"}); !equal(got, w) {
		t.Fatalf("scanned %v, want %v", got, w)
	}
}

func TestUserIndexScanner(t *testing.T) {
	ctx := context.Background()
	bkt := testBucket(t)
	reg := prometheus.NewPedanticRegistry()
	s, err := NewScanner(Config{Strategy: StrategyUserIndex, MaxStalePeriod: time.Hour}, bkt, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	listed := want([]string{"team-a"}, []string{"team-b"}, []string{"team-c"})
	if got := scan(t, s); !equal(got, listed) {
		t.Fatalf("without an index: %v, want the listing %v", got, listed)
	}

	// The compactor's index is what the scanner answers, even where the
	// bucket changed since.
	if err := NewIndexUpdater(bkt, reg).UpdateIndex(ctx); err != nil {
		t.Fatal(err)
	}
	upload(t, bkt, "team-d/01J0000000000000000000000D/meta.json", "{}")
	if got := scan(t, s); !equal(got, listed) {
		t.Fatalf("from the index: %v, want %v", got, listed)
	}

	// A stale index is not trusted.
	if err := WriteIndex(ctx, bkt, &Index{Version: indexVersion, UpdatedAt: time.Now().Add(-2 * time.Hour).Unix(), Active: []string{"team-a"}}); err != nil {
		t.Fatal(err)
	}
	if got := scan(t, s); !equal(got, want([]string{"team-a", "team-d"}, []string{"team-b"}, []string{"team-c"})) {
		t.Fatalf("with a stale index: %v, want the listing", got)
	}
	// Nor one that does not decode.
	upload(t, bkt, IndexFilename, "not gzip")
	if _, err := ReadIndex(ctx, bkt); err == nil || !strings.Contains(err.Error(), "user index corrupted: user-index.json.gz") {
		t.Fatalf("reading a corrupted index: %v", err)
	}
	scan(t, s)
	// Nor one naming a path as a tenant.
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	_, _ = gz.Write([]byte(`{"version":1,"updated_at":` + strconv.FormatInt(time.Now().Unix(), 10) + `,"active":["../etc"]}`))
	_ = gz.Close()
	upload(t, bkt, IndexFilename, buf.String())
	if _, err := ReadIndex(ctx, bkt); err == nil || !strings.Contains(err.Error(), "names a tenant that cannot be a bucket folder") {
		t.Fatalf("reading an index naming ../etc: %v", err)
	}

	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP cortex_user_index_scan_fallbacks_total Total number of fallbacks to base scanner
# TYPE cortex_user_index_scan_fallbacks_total counter
cortex_user_index_scan_fallbacks_total{reason="corrupted"} 1
cortex_user_index_scan_fallbacks_total{reason="not-found"} 1
cortex_user_index_scan_fallbacks_total{reason="too-old"} 1
# HELP cortex_user_index_scan_succeeded_total Total number of successful scans using user index
# TYPE cortex_user_index_scan_succeeded_total counter
cortex_user_index_scan_succeeded_total 1
`), "cortex_user_index_scan_fallbacks_total", "cortex_user_index_scan_succeeded_total"); err != nil {
		t.Fatal(err)
	}
}

func TestCachedScanner(t *testing.T) {
	bkt := testBucket(t)
	reg := prometheus.NewPedanticRegistry()
	s, err := NewScanner(Config{Strategy: StrategyList, CacheTTL: time.Hour}, bkt, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	first := scan(t, s)
	upload(t, bkt, "team-d/01J0000000000000000000000D/meta.json", "{}")
	if got := scan(t, s); !equal(got, first) {
		t.Fatalf("within the TTL: %v, want the cached %v", got, first)
	}
	if got := testutil.ToFloat64(s.(*cachedScanner).hits); got != 1 {
		t.Fatalf("%v cache hits, want 1", got)
	}
	s.(*cachedScanner).scannedAt = time.Now().Add(-2 * time.Hour)
	if got := scan(t, s); !slices.Contains(got[0], "team-d") {
		t.Fatalf("after the TTL: %v, want team-d listed", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Strategy: "scan"}, `-blocks-storage.users-scanner.strategy="scan": unknown strategy`},
		{Config{Strategy: StrategyUserIndex}, "-blocks-storage.users-scanner.user-index.max-stale-period must be positive"},
		{Config{Strategy: StrategyList, CacheTTL: -time.Second}, "-blocks-storage.users-scanner.cache-ttl must not be negative"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// IndexService writes the index at start and every interval, only while
// owns says so.
func TestIndexService(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	tenants := []string{"team-a"}
	var mu sync.Mutex
	lister := ListFunc(func(context.Context) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(tenants), nil
	})
	up := NewIndexUpdaterOver(bkt, lister, nil)
	var owner atomic.Bool
	svc := IndexService(func() *IndexUpdater { return up }, 20*time.Millisecond, owner.Load, slog.New(slog.DiscardHandler))
	if err := services.StartAndAwaitRunning(ctx, svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(ctx, svc) })
	if _, err := ReadIndex(ctx, bkt); !errors.Is(err, ErrIndexNotFound) {
		t.Fatalf("not the owner, the index was written: %v", err)
	}
	owner.Store(true)
	mu.Lock()
	tenants = append(tenants, "team-b")
	mu.Unlock()
	testkit.Eventually(t, 10*time.Second, "the owner writes the index", func() bool {
		idx, err := ReadIndex(ctx, bkt)
		return err == nil && slices.Equal(idx.Active, []string{"team-a", "team-b"})
	})
}
