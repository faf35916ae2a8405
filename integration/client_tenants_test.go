package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ingclient "github.com/cortex-tls/cortex/pkg/ingester/client"
	sgclient "github.com/cortex-tls/cortex/pkg/storegateway/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

// TestClientTenantsBindCertificatesToTenants: with -auth.client-tenants-file
// a client certificate acts only for the tenants listed for its identity,
// over HTTP and gRPC; with -auth.tenant-from-client-cert a push without
// X-Scope-OrgID lands in the certificate's own tenant; routes reading
// every tenant's data need "*"; a new file applies without a restart.
func TestClientTenantsBindCertificatesToTenants(t *testing.T) {
	t.Parallel()
	certs, allow := tenantACerts(t, "tenant-a")
	write := func(content string) {
		if err := os.WriteFile(allow, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// "client" is the identity of this process's own internal calls.
	write("clients:\n  client: ['*']\n  tenant-a: [tenant-a]\n")

	proc, admin := startBlocksProcess(t, certs,
		"-auth.client-tenants-file="+allow,
		"-auth.client-tenants-reload-period=200ms",
		"-auth.tenant-from-client-cert",
		"-blocks-storage.filesystem.dir="+t.TempDir(),
		"-blocks-storage.bucket-store.sync-dir="+t.TempDir(),
		"-compactor.data-dir="+t.TempDir(),
	)
	a := *admin
	a.client = httpClient(tlsClient(t, clientConfig(certs, "tenant-a")))
	now := time.Now().UnixMilli()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("bound", 0, now, 1)}}

	if code, body := a.push("tenant-a", req); code != http.StatusNoContent {
		t.Fatalf("tenant-a writing its own tenant: %d %s", code, body)
	}
	code, body := a.push("tenant-b", req)
	if code != http.StatusForbidden || !strings.Contains(body, `client "tenant-a" may not act for tenant "tenant-b"`) {
		t.Fatalf("tenant-a writing tenant-b: %d %s, want 403 naming both", code, body)
	}
	// No X-Scope-OrgID: the certificate's identity is the tenant.
	if code, body := a.push("", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("bound", 1, now, 2)}}); code != http.StatusNoContent {
		t.Fatalf("push without a header: %d %s", code, body)
	}
	res := admin.query("tenant-a", "query", url.Values{"query": {"count(bound)"}})
	if len(res.Data.Result) != 1 || res.Data.Result[0].Value[1] != "2" {
		t.Fatalf("tenant-a holds %+v, want both series", res.Data.Result)
	}
	code, body = do(t, a.client, http.MethodGet, "https://"+proc.HTTPAddr+"/prometheus/api/v1/query?query=up", "tenant-a|tenant-b", nil)
	if code != http.StatusForbidden || !strings.Contains(body, `tenant "tenant-b"`) {
		t.Fatalf("a query of tenant-a|tenant-b: %d %s, want 403 for tenant-b", code, body)
	}
	code, body = do(t, a.client, http.MethodGet, "https://"+proc.HTTPAddr+"/distributor/all_user_stats", "", nil)
	if code != http.StatusForbidden || !strings.Contains(body, `only identities given "*" in -auth.client-tenants-file`) {
		t.Fatalf("tenant-a reading every tenant's stats: %d %s, want 403", code, body)
	}
	if code, body := do(t, admin.client, http.MethodGet, "https://"+proc.HTTPAddr+"/distributor/all_user_stats", "", nil); code != http.StatusOK {
		t.Fatalf("the internal identity reading every tenant's stats: %d %s", code, body)
	}

	// gRPC: the tenant in the call's metadata is checked the same way.
	sg, err := sgclient.Dial(proc.GRPCAddr, sgclient.Config{}, tlsClient(t, clientConfig(certs, "tenant-a")))
	if err != nil {
		t.Fatal(err)
	}
	defer sg.Close()
	labelNames := func(id string) error {
		ctx, cancel := context.WithTimeout(tenant.Inject(context.Background(), id), 10*time.Second)
		defer cancel()
		_, err := sg.LabelNames(ctx, &ingclient.LabelNamesRequest{})
		return err
	}
	if err := labelNames("tenant-a"); err != nil {
		t.Fatalf("tenant-a's own label names over gRPC: %v", err)
	}
	if err := labelNames("tenant-b"); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `client "tenant-a" may not act for tenant "tenant-b"`) {
		t.Fatalf("tenant-b's label names over gRPC: %v, want PermissionDenied naming both", err)
	}

	// A broken file keeps the last good list; a good one applies.
	write("clients: [broken")
	proc.WaitLog("client tenants file did not load; keeping the last good one")
	if code, _ := a.push("tenant-a", req); code != http.StatusNoContent {
		t.Fatalf("after a broken file: %d", code)
	}
	write("clients:\n  client: ['*']\n  tenant-a: [tenant-a, tenant-b]\n")
	proc.EventuallyNil(10*time.Second, "tenant-a allowed tenant-b after the reload", func() error {
		if code, body := a.push("tenant-b", req); code != http.StatusNoContent {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
}
