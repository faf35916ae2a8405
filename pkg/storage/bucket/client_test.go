package bucket

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// roundTrip writes, lists, reads and deletes objects through b.
func roundTrip(t *testing.T, b objstore.Bucket) {
	t.Helper()
	ctx := context.Background()
	objects := map[string]string{
		"tenant-1/01ABC/meta.json":        `{"ulid":"01ABC"}`,
		"tenant-1/01ABC/chunks/000001":    strings.Repeat("chunk", 1000),
		"tenant-2/bucket-index.json.gz":   "index",
		"tenant-1/markers/01ABC-mark.txt": "deletion",
	}
	for name, body := range objects {
		if err := b.Upload(ctx, name, strings.NewReader(body)); err != nil {
			t.Fatalf("upload %s: %v", name, err)
		}
	}

	var top []string
	if err := b.Iter(ctx, "", func(name string) error { top = append(top, name); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(top)
	if !slices.Equal(top, []string{"tenant-1/", "tenant-2/"}) {
		t.Errorf("top level lists %v, want the two tenant directories", top)
	}
	var all []string
	if err := b.Iter(ctx, "tenant-1/", func(name string) error { all = append(all, name); return nil }, objstore.WithRecursiveIter()); err != nil {
		t.Fatal(err)
	}
	slices.Sort(all)
	if want := []string{"tenant-1/01ABC/chunks/000001", "tenant-1/01ABC/meta.json", "tenant-1/markers/01ABC-mark.txt"}; !slices.Equal(all, want) {
		t.Errorf("recursive listing of tenant-1/ is %v, want %v", all, want)
	}

	for name, body := range objects {
		r, err := b.Get(ctx, name)
		if err != nil {
			t.Fatalf("get %s: %v", name, err)
		}
		got, err := io.ReadAll(r)
		_ = r.Close()
		if err != nil || string(got) != body {
			t.Errorf("get %s: %d bytes, err %v; want what was uploaded", name, len(got), err)
		}
	}
	r, err := b.GetRange(ctx, "tenant-1/01ABC/chunks/000001", 5, 10)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	_ = r.Close()
	if string(got) != "chunkchunk" {
		t.Errorf("range read %q", got)
	}
	attrs, err := b.Attributes(ctx, "tenant-2/bucket-index.json.gz")
	if err != nil || attrs.Size != 5 {
		t.Errorf("attributes %+v, %v", attrs, err)
	}

	if _, err := b.Get(ctx, "tenant-3/missing"); !b.IsObjNotFoundErr(err) {
		t.Errorf("get of a missing object: %v, want a not-found error", err)
	}
	for name := range objects {
		if err := b.Delete(ctx, name); err != nil {
			t.Fatalf("delete %s: %v", name, err)
		}
		if ok, err := b.Exists(ctx, name); ok || err != nil {
			t.Errorf("%s exists (%v, %v) after delete", name, ok, err)
		}
	}
}

func TestFilesystem(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "blocks")
	cfg := mustParse(t, "-blocks-storage.filesystem.dir="+dir)
	reg := prometheus.NewPedanticRegistry()
	b, err := NewClient(context.Background(), cfg, "ingester", nil, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("directory not created: %v", err)
	}

	// A file written by the client is a file under dir.
	if err := b.Upload(context.Background(), "t/x", bytes.NewReader([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "t", "x")); err != nil || string(got) != "x" {
		t.Fatalf("object not stored under the directory: %q %v", got, err)
	}
	if err := b.Delete(context.Background(), "t/x"); err != nil {
		t.Fatal(err)
	}

	roundTrip(t, b)

	// Cortex's metric names and labels.
	if n := testkit.MetricSum(t, reg, "thanos_objstore_bucket_operations_total", "component", "ingester", "bucket", "", "operation", "upload"); n != 5 {
		t.Errorf("thanos_objstore_bucket_operations_total{component=ingester,operation=upload} = %v, want 5", n)
	}
	// The get of a missing object; callers that expect those wrap the
	// client with WithExpectedErrs(IsObjNotFoundErr), as Cortex does.
	if n := testkit.MetricSum(t, reg, "thanos_objstore_bucket_operation_failures_total", "component", "ingester", "operation", "get"); n != 1 {
		t.Errorf("%v get failures counted, want 1", n)
	}
}

func TestFilesystemDirErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, filepath.Join(file, "sub")} {
		cfg := mustParse(t, "-blocks-storage.filesystem.dir="+dir)
		_, err := NewClient(context.Background(), cfg, "test", nil, nil, nil)
		if err == nil || !strings.Contains(err.Error(), "-blocks-storage.filesystem.dir=\""+dir+"\"") {
			t.Errorf("dir %s: error %v does not name -blocks-storage.filesystem.dir", dir, err)
		}
	}

	cfg := mustParse(t, "-blocks-storage.backend=nope")
	if _, err := NewClient(context.Background(), cfg, "test", nil, nil, nil); err == nil || !strings.Contains(err.Error(), "-blocks-storage.backend") {
		t.Errorf("unknown backend: %v", err)
	}
}

func TestS3CertificateFilesCheckedAtStartup(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-blocks-storage.s3.http.tls-ca-path=" + filepath.Join(dir, "missing.crt")}, "-blocks-storage.s3.http.tls-ca-path"},
		{[]string{"-blocks-storage.s3.http.tls-cert-path=" + filepath.Join(dir, "c.crt"), "-blocks-storage.s3.http.tls-key-path=" + filepath.Join(dir, "c.key")}, "-blocks-storage.s3.http.tls-cert-path"},
		{[]string{"-blocks-storage.s3.http.tls-min-version=VersionTLS99"}, "-blocks-storage.s3.http.tls-min-version"},
	} {
		args := append([]string{"-blocks-storage.backend=s3", "-blocks-storage.s3.endpoint=127.0.0.1:1", "-blocks-storage.s3.bucket-name=b",
			"-blocks-storage.s3.access-key-id=a", "-blocks-storage.s3.secret-access-key=s"}, tc.args...)
		cfg := mustParse(t, args...)
		_, err := NewClient(context.Background(), cfg, "test", nil, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.args, err, tc.want)
		}
	}
}
