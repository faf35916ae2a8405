package bucketindex

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/thanos-io/objstore"
)

func TestTenantDeletionMarkRoundTrip(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()

	if ok, err := TenantDeletionMarkExists(ctx, bkt, tenant); err != nil || ok {
		t.Fatalf("unmarked tenant: exists %v, err %v", ok, err)
	}
	if m, err := ReadTenantDeletionMark(ctx, bkt, tenant); err != nil || m != nil {
		t.Fatalf("unmarked tenant: mark %+v, err %v", m, err)
	}

	at := time.Unix(1700000000, 0)
	if err := WriteTenantDeletionMark(ctx, bkt, tenant, NewTenantDeletionMark(at)); err != nil {
		t.Fatal(err)
	}
	// Cortex's path and JSON, byte for byte.
	r, err := bkt.Get(ctx, "tenant-1/markers/tenant-deletion-mark.json")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	_ = r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"deletion_time":1700000000}`; got != want {
		t.Fatalf("mark %s, want %s", got, want)
	}
	if ok, err := TenantDeletionMarkExists(ctx, bkt, tenant); err != nil || !ok {
		t.Fatalf("marked tenant: exists %v, err %v", ok, err)
	}
	if ok, _ := TenantDeletionMarkExists(ctx, bkt, "tenant-2"); ok {
		t.Fatal("another tenant is marked too")
	}
	m, err := ReadTenantDeletionMark(ctx, bkt, tenant)
	if err != nil || m == nil || m.DeletionTime != at.Unix() || m.FinishedTime != 0 {
		t.Fatalf("read back %+v, %v", m, err)
	}

	if err := DeleteTenantDeletionMark(ctx, bkt, tenant); err != nil {
		t.Fatal(err)
	}
	if ok, _ := TenantDeletionMarkExists(ctx, bkt, tenant); ok {
		t.Fatal("mark still there after deleting it")
	}
	if err := DeleteTenantDeletionMark(ctx, bkt, tenant); err != nil {
		t.Fatalf("deleting a missing mark: %v", err)
	}
}

// A mark written by a newer Cortex, under __markers__/<tenant>/, is read
// too.
func TestTenantDeletionMarkGlobalCopyRead(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	put(t, bkt, "__markers__/tenant-1/tenant-deletion-mark.json", `{"deletion_time":5,"finished_time":7}`)
	if ok, err := TenantDeletionMarkExists(ctx, bkt, tenant); err != nil || !ok {
		t.Fatalf("exists %v, err %v", ok, err)
	}
	m, err := ReadTenantDeletionMark(ctx, bkt, tenant)
	if err != nil || m == nil || m.DeletionTime != 5 || m.FinishedTime != 7 {
		t.Fatalf("read %+v, %v", m, err)
	}
}

func TestTenantDeletionMarkCorruptedNamesFile(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	put(t, bkt, "tenant-1/markers/tenant-deletion-mark.json", `{`)
	_, err := ReadTenantDeletionMark(context.Background(), bkt, tenant)
	if err == nil || !strings.Contains(err.Error(), "tenant-1/markers/tenant-deletion-mark.json") {
		t.Fatalf("got %v, want an error naming the file", err)
	}
}
