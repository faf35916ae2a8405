package purger

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

const blockID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"

func serve(t *testing.T, h http.HandlerFunc, method, orgID string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, "/purger/x", nil)
	if orgID != "" {
		req.Header.Set(tenant.HeaderName, orgID)
	}
	rec := httptest.NewRecorder()
	tenant.HTTPMiddleware(true, h).ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func status(t *testing.T, a *TenantDeletionAPI, orgID string) DeleteTenantStatusResponse {
	t.Helper()
	code, body := serve(t, a.DeleteTenantStatus, http.MethodGet, orgID)
	if code != http.StatusOK {
		t.Fatalf("status: %d %s", code, body)
	}
	var resp DeleteTenantStatusResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("status body %q: %v", body, err)
	}
	return resp
}

func TestDeleteTenantWritesMark(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	a := NewTenantDeletionAPI(bkt, nil)
	at := time.Unix(1700000000, 0)
	a.now = func() time.Time { return at }

	code, body := serve(t, a.DeleteTenant, http.MethodPost, "team-a")
	if code != http.StatusOK {
		t.Fatalf("delete_tenant: %d %s", code, body)
	}
	m, err := bucketindex.ReadTenantDeletionMark(context.Background(), bkt, "team-a")
	if err != nil || m == nil || m.DeletionTime != at.Unix() {
		t.Fatalf("mark %+v, %v", m, err)
	}
	if ok, _ := bucketindex.TenantDeletionMarkExists(context.Background(), bkt, "team-b"); ok {
		t.Fatal("another tenant was marked")
	}
}

func TestDeleteTenantNeedsTenant(t *testing.T) {
	a := NewTenantDeletionAPI(objstore.NewInMemBucket(), nil)
	if code, body := serve(t, a.DeleteTenant, http.MethodPost, ""); code != http.StatusUnauthorized || !strings.Contains(body, "X-Scope-OrgID") {
		t.Fatalf("no tenant: %d %s", code, body)
	}
	// Several tenants at once are refused, none marked.
	code, body := serve(t, a.DeleteTenant, http.MethodPost, "a|b")
	if code != http.StatusBadRequest || !strings.Contains(body, `X-Scope-OrgID "a|b" names several tenants: this API acts for one tenant`) {
		t.Fatalf("two tenants: %d %s", code, body)
	}
}

func TestDeleteTenantStatus(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	a := NewTenantDeletionAPI(bkt, nil)
	ctx := context.Background()
	if err := bkt.Upload(ctx, "team-a/"+blockID+"/meta.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	if err := bkt.Upload(ctx, "team-a/bucket-index.json.gz", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if got := status(t, a, "team-a"); got != (DeleteTenantStatusResponse{TenantID: "team-a", BlocksDeleted: false}) {
		t.Fatalf("tenant with a block: %+v", got)
	}
	// A tenant whose directory holds no block (only its index and
	// markers) has its blocks deleted.
	if err := bkt.Delete(ctx, "team-a/"+blockID+"/meta.json"); err != nil {
		t.Fatal(err)
	}
	if code, _ := serve(t, a.DeleteTenant, http.MethodPost, "team-a"); code != http.StatusOK {
		t.Fatal(code)
	}
	if got := status(t, a, "team-a"); got != (DeleteTenantStatusResponse{TenantID: "team-a", BlocksDeleted: true}) {
		t.Fatalf("tenant without blocks: %+v", got)
	}
	_, body := serve(t, a.DeleteTenantStatus, http.MethodGet, "team-a")
	if want := `{"tenant_id":"team-a","blocks_deleted":true}` + "\n"; body != want {
		t.Fatalf("body %q, want Cortex's %q", body, want)
	}
}

type failingBucket struct{ objstore.Bucket }

func (failingBucket) Upload(context.Context, string, io.Reader, ...objstore.ObjectUploadOption) error {
	return errors.New("bucket unreachable")
}

func (failingBucket) Iter(context.Context, string, func(string) error, ...objstore.IterOption) error {
	return errors.New("bucket unreachable")
}

func TestBucketErrorsNameTenant(t *testing.T) {
	a := NewTenantDeletionAPI(failingBucket{objstore.NewInMemBucket()}, nil)
	code, body := serve(t, a.DeleteTenant, http.MethodPost, "team-a")
	if code != http.StatusInternalServerError || !strings.Contains(body, "team-a/markers/tenant-deletion-mark.json") || !strings.Contains(body, "bucket unreachable") {
		t.Fatalf("delete_tenant on a failing bucket: %d %s", code, body)
	}
	code, body = serve(t, a.DeleteTenantStatus, http.MethodGet, "team-a")
	if code != http.StatusInternalServerError || !strings.Contains(body, "tenant team-a") {
		t.Fatalf("status on a failing bucket: %d %s", code, body)
	}
}
