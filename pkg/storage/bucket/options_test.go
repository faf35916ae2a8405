package bucket

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/go-kit/log"
	"github.com/thanos-io/objstore/providers/s3"
)

// -<prefix>azure.connection-string reaches objstore's Azure configuration
// as its storage connection string; with an account key as well it is
// refused, naming both flags.
func TestAzureConnectionString(t *testing.T) {
	const conn = "DefaultEndpointsProtocol=https;AccountName=acct;SharedAccessSignature=sv=2022&sig=abc;BlobEndpoint=https://acct.blob.core.windows.net"
	for _, prefix := range []string{"blocks-storage.", "ruler-storage.", "alertmanager-storage."} {
		cfg, err := parse(t, prefix, "-"+prefix+"backend=azure", "-"+prefix+"azure.account-name=acct", "-"+prefix+"azure.container-name=blocks", "-"+prefix+"azure.connection-string="+conn)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", prefix, err)
		}
		if got := cfg.Azure.objstoreConfig().StorageConnectionString; got != conn {
			t.Errorf("%s: objstore's connection string %q", prefix, got)
		}
	}

	cfg := mustParse(t, "-blocks-storage.backend=azure", "-blocks-storage.azure.account-name=acct", "-blocks-storage.azure.container-name=blocks",
		"-blocks-storage.azure.connection-string="+conn, "-blocks-storage.azure.account-key=secret")
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "-blocks-storage.azure.account-key and -blocks-storage.azure.connection-string cannot both be set") {
		t.Fatalf("got %v", err)
	}
}

// hostRecorder records the host of each request and fails it.
type hostRecorder struct {
	mu    sync.Mutex
	hosts []string
}

func (h *hostRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.hosts = append(h.hosts, r.URL.Host)
	h.mu.Unlock()
	return nil, errors.New("recorded")
}

// -<prefix>s3.disable-dualstack makes the client call AWS's plain regional
// endpoint instead of the dualstack one.
func TestS3DisableDualstack(t *testing.T) {
	for _, disable := range []bool{false, true} {
		args := []string{"-blocks-storage.backend=s3", "-blocks-storage.s3.endpoint=s3.amazonaws.com", "-blocks-storage.s3.region=eu-west-1",
			"-blocks-storage.s3.bucket-name=blocks", "-blocks-storage.s3.access-key-id=id", "-blocks-storage.s3.secret-access-key=secret",
			"-blocks-storage.s3.bucket-lookup-type=virtual-hosted"}
		if disable {
			args = append(args, "-blocks-storage.s3.disable-dualstack")
		}
		cfg := mustParse(t, args...)
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		rec := &hostRecorder{}
		oc := cfg.S3.objstoreConfig(rec)
		oc.MaxRetries = 1
		b, err := s3.NewBucketWithConfig(log.NewNopLogger(), oc, "test", nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = b.Exists(context.Background(), "some/object")
		want := "blocks.s3.dualstack.eu-west-1.amazonaws.com"
		if disable {
			want = "blocks.s3.eu-west-1.amazonaws.com"
		}
		rec.mu.Lock()
		hosts := rec.hosts
		rec.mu.Unlock()
		if len(hosts) == 0 || hosts[0] != want {
			t.Errorf("disable-dualstack=%v: requests to %v, want %s", disable, hosts, want)
		}
	}
}
