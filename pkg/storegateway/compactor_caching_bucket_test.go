package storegateway

import (
	"flag"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The compactor's caching bucket caches meta.json and, for the compaction
// only, the tenant deletion mark; never a block's deletion mark. Without a
// backend it is the bucket itself.
func TestCompactorCachingBucketMatchers(t *testing.T) {
	bkt := newBucket(t)
	var cfg MetadataCacheConfig
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	if got, err := NewCompactorCachingBucket(cfg, false, bkt, "compactor", nil, nil, nil); err != nil || got != bkt {
		t.Fatalf("no backend: %v, %v; want the bucket itself", got, err)
	}
	cfg.Backend = CacheBackendInMemory
	const id = "01HZZZZZZZZZZZZZZZZZZZZZZZ"
	for _, tc := range []struct {
		name                string
		compaction, cleanup bool
	}{
		{"team-a/" + id + "/meta.json", true, true},
		{"team-a/" + id + "/deletion-mark.json", false, false},
		{"team-a/markers/" + id + "-deletion-mark.json", false, false},
		{"team-a/" + id + "/no-compact-mark.json", false, false},
		{"team-a/markers/tenant-deletion-mark.json", true, false},
		{"__markers__/team-a/tenant-deletion-mark.json", true, false},
		{"team-a/" + id + "/index", false, false},
		{"team-a/notablock/meta.json", false, false},
	} {
		for _, cleaner := range []bool{false, true} {
			b, err := NewCompactorCachingBucket(cfg, cleaner, bkt, "compactor", nil, nil, prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			want := tc.compaction
			if cleaner {
				want = tc.cleanup
			}
			if got := b.(*cachingBucket).isMetafile(tc.name); got != want {
				t.Errorf("cleaner %v: %s cached %v, want %v", cleaner, tc.name, got, want)
			}
		}
	}
	c := compactorMetadataCacheConfig(cfg, true)
	if c.MetafileExistsTTL != 0 || c.MetafileDoesntExistTTL != 0 || c.TenantsListTTL != 0 || c.TenantBlocksListTTL != 0 || c.BucketIndexContentTTL != 0 || c.MetafileContentTTL != cfg.MetafileContentTTL {
		t.Errorf("cleaner's TTLs %+v", c)
	}
}
