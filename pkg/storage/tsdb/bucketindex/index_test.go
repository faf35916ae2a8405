package bucketindex

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
)

const tenant = "tenant-1"

func newID(t *testing.T, ms uint64) ulid.ULID {
	t.Helper()
	return ulid.MustNew(ms, strings.NewReader(strings.Repeat("x", 16)))
}

// putBlock writes a block's meta.json (and a chunk and index object) to
// the tenant's directory as the shipper does.
func putBlock(t *testing.T, bkt objstore.Bucket, id ulid.ULID, minT, maxT int64, segments ...string) {
	t.Helper()
	ctx := context.Background()
	m := block.Meta{
		BlockMeta: tsdb.BlockMeta{ULID: id, MinTime: minT, MaxTime: maxT, Version: 1},
		Thanos: block.ThanosMeta{
			Version:      block.ThanosVersion1,
			Labels:       map[string]string{block.TenantIDExternalLabel: tenant},
			Source:       block.SourceReceive,
			SegmentFiles: segments,
		},
	}
	for _, s := range segments {
		put(t, bkt, path.Join(tenant, id.String(), "chunks", s), "c")
	}
	put(t, bkt, path.Join(tenant, id.String(), "index"), "i")
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := bkt.Upload(ctx, path.Join(tenant, block.MetaPath(id)), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

func put(t *testing.T, bkt objstore.Bucket, name, content string) {
	t.Helper()
	if err := bkt.Upload(context.Background(), name, strings.NewReader(content)); err != nil {
		t.Fatal(err)
	}
}

func TestWriteReadIndex(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()

	if _, err := ReadIndex(ctx, bkt, tenant); !errors.Is(err, ErrIndexNotFound) {
		t.Fatalf("reading a missing index: got %v, want ErrIndexNotFound", err)
	}

	id := newID(t, 1000)
	idx := &Index{
		Version:            IndexVersion1,
		Blocks:             Blocks{{ID: id, MinTime: 10, MaxTime: 20, SegmentsFormat: SegmentsFormat1Based6Digits, SegmentsNum: 2, UploadedAt: 30}},
		BlockDeletionMarks: BlockDeletionMarks{{ID: id, DeletionTime: 40}},
		UpdatedAt:          50,
	}
	if err := WriteIndex(ctx, bkt, tenant, idx); err != nil {
		t.Fatal(err)
	}

	// The object is gzipped JSON with Cortex's keys.
	r, err := bkt.Get(ctx, tenant+"/bucket-index.json.gz")
	if err != nil {
		t.Fatal(err)
	}
	gz, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Close()
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "blocks", "block_deletion_marks", "updated_at"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("index JSON lacks %q: %s", k, raw)
		}
	}
	b0 := generic["blocks"].([]any)[0].(map[string]any)
	for _, k := range []string{"block_id", "min_time", "max_time", "segments_format", "segments_num", "uploaded_at"} {
		if _, ok := b0[k]; !ok {
			t.Errorf("block JSON lacks %q: %s", k, raw)
		}
	}
	if b0["block_id"] != id.String() {
		t.Errorf("block_id = %v, want %s", b0["block_id"], id)
	}

	got, err := ReadIndex(ctx, bkt, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Blocks) != 1 || *got.Blocks[0] != *idx.Blocks[0] || len(got.BlockDeletionMarks) != 1 ||
		*got.BlockDeletionMarks[0] != *idx.BlockDeletionMarks[0] || got.UpdatedAt != 50 {
		t.Fatalf("read back %+v, want %+v", got, idx)
	}

	put(t, bkt, tenant+"/bucket-index.json.gz", "not gzip")
	if _, err := ReadIndex(ctx, bkt, tenant); !errors.Is(err, ErrIndexCorrupted) || !strings.Contains(err.Error(), tenant) {
		t.Fatalf("reading a corrupted index: got %v, want ErrIndexCorrupted naming the tenant", err)
	}

	if err := DeleteIndex(ctx, bkt, tenant); err != nil {
		t.Fatal(err)
	}
	if err := DeleteIndex(ctx, bkt, tenant); err != nil {
		t.Fatalf("deleting a missing index: %v", err)
	}
}

func TestUpdater(t *testing.T) {
	ctx := context.Background()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)

	b1, b2, b3 := newID(t, 1), newID(t, 2), newID(t, 3)
	partial, corrupted, thanosMarked := newID(t, 4), newID(t, 5), newID(t, 6)
	putBlock(t, bkt, b1, 0, 100, "000001", "000002")
	putBlock(t, bkt, b2, 100, 200, "000001", "000003") // not 1-based 6 digits in sequence
	putBlock(t, bkt, b3, 200, 300, "000001")
	putBlock(t, bkt, thanosMarked, 300, 400, "000001")
	put(t, bkt, path.Join(tenant, partial.String(), "index"), "i") // upload stopped before meta.json
	put(t, bkt, path.Join(tenant, block.MetaPath(corrupted)), "{")
	// Another tenant's blocks are not this tenant's.
	put(t, bkt, path.Join("tenant-2", block.MetaPath(newID(t, 7))), "{}")

	now := time.Unix(1_700_000_000, 0)
	tb := objstore.NewPrefixedBucket(bkt, tenant)
	if marked, err := block.MarkForDeletion(ctx, tb, b3, "test", now); err != nil || !marked {
		t.Fatalf("marking %s: %v, %v", b3, marked, err)
	}
	// A mark written only beside the block, as Thanos' tools do.
	dm, _ := json.Marshal(block.DeletionMark{ID: thanosMarked, Version: 1, DeletionTime: now.Unix() + 5})
	put(t, bkt, path.Join(tenant, block.DeletionMarkPath(thanosMarked)), string(dm))

	u := NewUpdater(bkt, tenant, logger)
	idx, partials, err := u.UpdateIndex(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := idsOf(idx.Blocks); got != idsOf(Blocks{{ID: b1}, {ID: b2}, {ID: b3}, {ID: thanosMarked}}) {
		t.Fatalf("blocks %s, want b1 b2 b3 thanosMarked", got)
	}
	if len(partials) != 2 || !errors.Is(partials[partial], block.ErrMetaNotFound) || !errors.Is(partials[corrupted], block.ErrMetaCorrupted) {
		t.Fatalf("partials %v, want %s missing meta and %s corrupted", partials, partial, corrupted)
	}
	byID := map[ulid.ULID]*Block{}
	for _, b := range idx.Blocks {
		byID[b.ID] = b
	}
	if b := byID[b1]; b.SegmentsFormat != SegmentsFormat1Based6Digits || b.SegmentsNum != 2 || b.MinTime != 0 || b.MaxTime != 100 {
		t.Errorf("b1 entry %+v", b)
	}
	if b := byID[b2]; b.SegmentsFormat != SegmentsFormatUnknown || b.SegmentsNum != 0 {
		t.Errorf("b2 entry %+v: segments are not in sequence", b)
	}
	if up := byID[b1].GetUploadedAt(); time.Since(up) > time.Minute || time.Until(up) > time.Minute {
		t.Errorf("b1 uploaded_at %s is not the meta.json's upload time", up)
	}
	marks := map[ulid.ULID]int64{}
	for _, m := range idx.BlockDeletionMarks {
		marks[m.ID] = m.DeletionTime
	}
	if len(marks) != 2 || marks[b3] != now.Unix() || marks[thanosMarked] != now.Unix()+5 {
		t.Fatalf("deletion marks %v, want b3 at %d and thanosMarked at %d", marks, now.Unix(), now.Unix()+5)
	}
	if ok, _ := bkt.Exists(ctx, path.Join(tenant, block.GlobalDeletionMarkPath(thanosMarked))); !ok {
		t.Errorf("the per-block mark of %s was not copied to markers/", thanosMarked)
	}
	if got := idsOf(idx.ActiveBlocks()); got != idsOf(Blocks{{ID: b1}, {ID: b2}}) {
		t.Errorf("active blocks %s, want b1 b2", got)
	}

	// The next update reuses known entries (their meta.json is not read
	// again: replaced here by garbage) and drops deleted blocks.
	put(t, bkt, path.Join(tenant, block.MetaPath(b1)), "{")
	if err := block.Delete(ctx, tb, b3); err != nil {
		t.Fatal(err)
	}
	b4 := newID(t, 8)
	putBlock(t, bkt, b4, 400, 500, "000001")
	idx2, _, err := u.UpdateIndex(ctx, idx)
	if err != nil {
		t.Fatal(err)
	}
	if got := idsOf(idx2.Blocks); got != idsOf(Blocks{{ID: b1}, {ID: b2}, {ID: thanosMarked}, {ID: b4}}) {
		t.Fatalf("blocks after the update %s, want b1 b2 thanosMarked b4", got)
	}
	if len(idx2.BlockDeletionMarks) != 1 || idx2.BlockDeletionMarks[0].ID != thanosMarked {
		t.Fatalf("marks after the update %+v, want only thanosMarked's", idx2.BlockDeletionMarks)
	}
}

func TestDeleteBlock(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	id := newID(t, 1)
	putBlock(t, bkt, id, 0, 1, "000001")
	tb := objstore.NewPrefixedBucket(bkt, tenant)
	if _, err := block.MarkForDeletion(ctx, tb, id, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if marked, err := block.MarkForDeletion(ctx, tb, id, "again", time.Now().Add(time.Hour)); err != nil || marked {
		t.Fatalf("marking a marked block again: marked=%v err=%v, want a no-op", marked, err)
	}
	if err := block.Delete(ctx, tb, id); err != nil {
		t.Fatal(err)
	}
	if objs := bkt.Objects(); len(objs) != 0 {
		t.Fatalf("objects left after deleting the block: %v", objs)
	}
}

func idsOf(bs Blocks) string {
	ids := bs.GetULIDs()
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = id.String()
	}
	sortStrings(strs)
	return strings.Join(strs, " ")
}

func sortStrings(s []string) { slices.Sort(s) }

func TestUpdaterManyBlocksAndUnreadableMark(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	var ids []ulid.ULID
	for i := range 50 {
		id := newID(t, uint64(100+i))
		ids = append(ids, id)
		putBlock(t, bkt, id, int64(i)*10, int64(i+1)*10, "000001")
	}
	tb := objstore.NewPrefixedBucket(bkt, tenant)
	for _, id := range ids[:20] {
		if _, err := block.MarkForDeletion(ctx, tb, id, "test", time.Unix(1000, 0)); err != nil {
			t.Fatal(err)
		}
	}
	// An unreadable global mark still marks its block, dated from its upload.
	before := time.Now().Add(-time.Second).Unix()
	put(t, bkt, path.Join(tenant, block.GlobalDeletionMarkPath(ids[49])), "{")

	idx, partials, err := NewUpdater(bkt, tenant, slog.New(slog.DiscardHandler)).UpdateIndex(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Blocks) != 50 || len(partials) != 0 {
		t.Fatalf("%d blocks and %d partials, want 50 and 0", len(idx.Blocks), len(partials))
	}
	marks := map[ulid.ULID]int64{}
	for _, m := range idx.BlockDeletionMarks {
		marks[m.ID] = m.DeletionTime
	}
	if len(marks) != 21 {
		t.Fatalf("%d marks, want 21", len(marks))
	}
	for _, id := range ids[:20] {
		if marks[id] != 1000 {
			t.Errorf("mark of %s dated %d, want 1000", id, marks[id])
		}
	}
	if dt, ok := marks[ids[49]]; !ok || dt < before || dt > time.Now().Unix() {
		t.Errorf("unreadable mark of %s dated %d (present %v), want its upload time", ids[49], dt, ok)
	}
}

func TestBucketWithGlobalMarkers(t *testing.T) {
	ctx := context.Background()
	inner := objstore.NewInMemBucket()
	bkt := BucketWithGlobalMarkers(inner)
	id := newID(t, 1)

	put(t, bkt, path.Join(tenant, block.DeletionMarkPath(id)), `{"id":"x"}`)
	put(t, bkt, path.Join(tenant, id.String(), block.NoCompactMarkFilename), `{}`)
	put(t, bkt, path.Join(tenant, id.String(), "index"), "i")
	put(t, bkt, path.Join(tenant, "deletion-mark.json"), "not a block's")
	want := []string{
		path.Join(tenant, id.String(), "deletion-mark.json"),
		path.Join(tenant, id.String(), "index"),
		path.Join(tenant, id.String(), "no-compact-mark.json"),
		path.Join(tenant, "deletion-mark.json"),
		path.Join(tenant, "markers", id.String()+"-deletion-mark.json"),
		path.Join(tenant, "markers", id.String()+"-no-compact-mark.json"),
	}
	if got := objectNames(inner); !slices.Equal(got, want) {
		t.Fatalf("objects %v, want %v", got, want)
	}
	r, err := inner.Get(ctx, path.Join(tenant, block.GlobalDeletionMarkPath(id)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r)
	_ = r.Close()
	if string(body) != `{"id":"x"}` {
		t.Fatalf("global copy holds %q", body)
	}

	if err := bkt.Delete(ctx, path.Join(tenant, block.DeletionMarkPath(id))); err != nil {
		t.Fatal(err)
	}
	if ok, _ := inner.Exists(ctx, path.Join(tenant, block.GlobalDeletionMarkPath(id))); ok {
		t.Fatal("the global deletion mark outlived the block's")
	}
	// A tenant-prefixed bucket works the same.
	tb := BucketWithGlobalMarkers(objstore.NewPrefixedBucket(inner, "tenant-2"))
	put(t, tb, block.DeletionMarkPath(id), "{}")
	if ok, _ := inner.Exists(ctx, path.Join("tenant-2", block.GlobalDeletionMarkPath(id))); !ok {
		t.Fatal("no global copy through a tenant-prefixed bucket")
	}
}

func TestMarkForDeletionCompletesCopies(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	a, b := newID(t, 1), newID(t, 2)
	first := time.Unix(1000, 0)
	// a: marked beside the block only (a Thanos tool); b: global only (a
	// crash between the two uploads).
	dm, _ := json.Marshal(block.DeletionMark{ID: a, Version: 1, DeletionTime: first.Unix()})
	put(t, bkt, block.DeletionMarkPath(a), string(dm))
	dm, _ = json.Marshal(block.DeletionMark{ID: b, Version: 1, DeletionTime: first.Unix()})
	put(t, bkt, block.GlobalDeletionMarkPath(b), string(dm))
	for _, id := range []ulid.ULID{a, b} {
		marked, err := block.MarkForDeletion(ctx, bkt, id, "again", time.Unix(5000, 0))
		if err != nil || marked {
			t.Fatalf("re-marking %s: marked=%v err=%v", id, marked, err)
		}
		for _, name := range []string{block.DeletionMarkPath(id), block.GlobalDeletionMarkPath(id)} {
			m, err := block.ReadDeletionMark(ctx, bkt, name)
			if err != nil {
				t.Fatal(err)
			}
			if m.DeletionTime != first.Unix() {
				t.Errorf("%s dated %d, want the first mark's %d", name, m.DeletionTime, first.Unix())
			}
		}
	}
}

func objectNames(b *objstore.InMemBucket) []string {
	var names []string
	for n := range b.Objects() {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
