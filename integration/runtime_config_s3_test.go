package integration

import (
	"context"
	"flag"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cortex-tls/cortex/pkg/storage/bucket"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestRuntimeConfigFromS3: with -runtime-config.backend=s3, the process
// reads its runtime configuration from an object of a MinIO bucket over
// TLS (its CA given by -runtime-config.s3.http.tls-ca-path), and applies a
// changed object without a restart.
func TestRuntimeConfigFromS3(t *testing.T) {
	t.Parallel()
	m := testkit.StartMinIO(t)
	s3Flags := []string{
		"-runtime-config.backend=s3",
		"-runtime-config.s3.endpoint=" + m.Endpoint,
		"-runtime-config.s3.bucket-name=" + m.Bucket,
		"-runtime-config.s3.access-key-id=" + m.AccessKey,
		"-runtime-config.s3.secret-access-key=" + m.SecretKey,
		"-runtime-config.s3.http.tls-ca-path=" + m.PKI.CAPath,
	}
	var bcfg bucket.Config
	fs := flag.NewFlagSet("bucket", flag.ContinueOnError)
	bcfg.RegisterFlagsWithPrefix("runtime-config.", fs)
	if err := fs.Parse(s3Flags); err != nil {
		t.Fatal(err)
	}
	bkt, err := bucket.NewClient(context.Background(), bcfg, "test", nil, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bkt.Close()
	upload := func(content string) {
		t.Helper()
		if err := bkt.Upload(context.Background(), "cortex/runtime.yaml", strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
	}
	upload("overrides:\n  team-a:\n    max_series_per_user: 5\n")

	p, client := singleProcess(t, append(s3Flags, "-runtime-config.file=cortex/runtime.yaml", "-runtime-config.reload-period=100ms")...)
	base := "https://" + p.HTTPAddr
	if code, body := get(t, client, base+"/runtime_config?mode=diff"); code != http.StatusOK || body != "overrides:\n  team-a:\n    max_series_per_user: 5\n" {
		t.Fatalf("/runtime_config?mode=diff: %d\n%s", code, body)
	}
	upload("overrides:\n  team-a:\n    max_series_per_user: 6\n")
	p.Eventually(10*time.Second, "the changed object in /runtime_config", func() bool {
		_, body := tryGet(client, base+"/runtime_config?mode=diff")
		return strings.Contains(body, "max_series_per_user: 6\n")
	})
	if n := metricOf(t, client, p, `thanos_objstore_bucket_operations_total{bucket="",component="runtime-config",operation="get"}`); n < 2 {
		t.Errorf("%v gets of the runtime configuration object counted, want at least 2", n)
	}
}
