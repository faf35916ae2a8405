package bucket

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// A reader racing rewrites of an object reads one whole version of it,
// never a truncated one, and a listing never shows the upload's
// temporary file.
func TestFilesystemUploadReplacesObjectsWhole(t *testing.T) {
	dir := t.TempDir()
	b, err := newAtomicFilesystem(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	versions := [][]byte{bytes.Repeat([]byte{'a'}, 1<<20), bytes.Repeat([]byte{'b'}, 1<<20)}
	if err := b.Upload(ctx, "tenant/bucket-index.json.gz", bytes.NewReader(versions[0])); err != nil {
		t.Fatal(err)
	}

	// A reader that blocks inside the upload, so that the listing and the
	// read below run while the temporary file exists.
	started, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		r := io.MultiReader(bytes.NewReader(versions[1][:1<<19]), readerFunc(func([]byte) (int, error) {
			close(started)
			<-release
			return 0, io.EOF
		}), bytes.NewReader(versions[1][1<<19:]))
		if err := b.Upload(ctx, "tenant/bucket-index.json.gz", r); err != nil {
			t.Error(err)
		}
	})
	<-started
	entries, _ := os.ReadDir(filepath.Join(dir, "tenant"))
	if len(entries) != 2 {
		t.Fatalf("during the upload the directory holds %d files, want the object and its temporary file", len(entries))
	}
	var listed []string
	if err := b.Iter(ctx, "tenant/", func(name string) error { listed = append(listed, name); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0] != "tenant/bucket-index.json.gz" {
		t.Fatalf("listed %v during the upload, want only the object", listed)
	}
	if got := get(t, b, "tenant/bucket-index.json.gz"); !bytes.Equal(got, versions[0]) {
		t.Fatalf("during the upload the object reads %d bytes starting %q, want the whole previous version", len(got), got[:1])
	}
	close(release)
	wg.Wait()
	if got := get(t, b, "tenant/bucket-index.json.gz"); !bytes.Equal(got, versions[1]) {
		t.Fatalf("after the upload the object reads %d bytes starting %q, want the whole new version", len(got), got[:1])
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "tenant")); len(entries) != 1 {
		t.Fatalf("after the upload the directory holds %d files, want the object only", len(entries))
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func get(t *testing.T, b *atomicFilesystem, name string) []byte {
	t.Helper()
	r, err := b.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return got
}
