package integration

import (
	"context"
	"flag"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ingclient "github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestStreamPushMutualTLS: distributors with -distributor.use-stream-push
// push to an ingester over a PushStream with mutual TLS, signed with the
// first of their -distributor.sign-write-requests-keys; the ingester
// accepts the keys it lists (a rotation's new and old) and refuses a
// stream signed with another. On a stream each message's tenant is checked
// against the client certificate's tenants (-auth.client-tenants-file): a
// refused message is answered and the stream goes on.
func TestStreamPushMutualTLS(t *testing.T) {
	t.Parallel()
	certs, allow := tenantACerts(t, "tenant-a")
	c := &cluster{t: t, dir: t.TempDir(), certs: certs, client: httpClient(tlsClient(t, clientConfig(certs, "client")))}
	stream := []string{"-distributor.use-stream-push", "-distributor.sign-write-requests", "-distributor.replication-factor=1"}
	ing := c.start(append(stream,
		"-target=ingester",
		"-ingester.lifecycler.ID=ingester-0",
		"-ingester.lifecycler.addr=127.0.0.1",
		"-blocks-storage.tsdb.dir="+filepath.Join(c.dir, "ingester-0"),
		"-distributor.sign-write-requests-keys=new,old",
		"-auth.client-tenants-file="+allow,
	)...)
	rotated := c.start(append(stream, "-target=distributor", "-distributor.sign-write-requests-keys=old")...)
	stale := c.start(append(stream, "-target=distributor", "-distributor.sign-write-requests-keys=stale")...)
	for _, proc := range []*testkit.Cortex{ing, rotated, stale} {
		waitReady(proc, c.client)
	}
	c.waitActiveIngesters(rotated, 1)
	c.waitActiveIngesters(stale, 1)

	now := time.Now().UnixMilli()
	c.distributor = rotated
	if code, body := c.push("tenant-a", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("streamed", 0, now, 1)}}); code != http.StatusNoContent {
		t.Fatalf("push through the distributor signing with the old key: %d %s", code, body)
	}
	c.distributor = stale
	code, body := c.push("tenant-a", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("streamed", 9, now, 1)}})
	if code < 500 || !strings.Contains(body, "signature mismatch: signed with none of the ingester's -distributor.sign-write-requests-keys") {
		t.Fatalf("push through the distributor signing with a stale key: %d %s, want 5xx naming the keys", code, body)
	}

	dial := func(leaf string) *ingclient.Conn {
		var cfg ingclient.Config
		cfg.RegisterFlags(flag.NewFlagSet("client", flag.PanicOnError))
		conn, err := ingclient.Dial(ing.GRPCAddr, cfg, tlsClient(t, clientConfig(certs, leaf)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	openAs := func(conn *ingclient.Conn, orgID, key string) ingclient.PushStreamClient {
		sctx := tenant.Inject(ctx, orgID)
		if key != "" {
			sctx = metadata.AppendToOutgoingContext(sctx, ingclient.StreamSignatureHeader, ingclient.StreamSignature(key, orgID))
		}
		s, err := conn.PushStream(sctx)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	message := func(id uint64, tenantID string, ts prompb.TimeSeries) *ingclient.StreamPushRequest {
		b, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		signer := ingclient.NewSigner(tenantID)
		signer.Series(&ts)
		return &ingclient.StreamPushRequest{Id: id, TenantId: tenantID, Signature: signer.Sum(), Request: b}
	}

	tenantA := dial("tenant-a")
	unsigned := openAs(tenantA, "tenant-a", "")
	_ = unsigned.Send(message(1, "tenant-a", series("streamed", 1, now, 1)))
	if _, err := unsigned.Recv(); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "-distributor.sign-write-requests-keys is set in the ingester") {
		t.Fatalf("an unsigned stream: %v, want Unauthenticated naming the flag", err)
	}

	s := openAs(tenantA, "tenant-a", "new")
	answers := []struct {
		msg      *ingclient.StreamPushRequest
		code     codes.Code
		contains string
	}{
		{message(1, "tenant-b", series("streamed", 2, now, 1)), codes.PermissionDenied, `client "tenant-a" may not act for tenant "tenant-b" (-auth.client-tenants-file)`},
		{message(2, "tenant-a", series("streamed", 3, now, 1)), codes.OK, ""},
		{message(3, "tenant-b", series("streamed", 4, now, 1)), codes.PermissionDenied, `client "tenant-a" may not act for tenant "tenant-b"`},
		{message(4, "tenant-a", series("streamed", 5, now, 1)), codes.OK, ""},
	}
	for _, a := range answers {
		if err := s.Send(a.msg); err != nil {
			t.Fatalf("sending message %d: %v", a.msg.Id, err)
		}
		r, err := s.Recv()
		if err != nil {
			t.Fatalf("answer to message %d: %v", a.msg.Id, err)
		}
		if r.Id != a.msg.Id || codes.Code(r.Code) != a.code || !strings.Contains(r.Message, a.contains) {
			t.Fatalf("answer to message %d (tenant %s): id %d, %s %q, want %s %q", a.msg.Id, a.msg.TenantId, r.Id, codes.Code(r.Code), r.Message, a.code, a.contains)
		}
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}

	internal := dial("client")
	for _, tn := range []struct {
		id   string
		want []string
	}{{"tenant-a", []string{"0", "3", "5"}}, {"tenant-b", nil}} {
		resp, err := internal.LabelValues(tenant.Inject(ctx, tn.id), &ingclient.LabelValuesRequest{Name: "series"})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(resp.Values, tn.want) {
			t.Fatalf("%s holds series %v, want %v", tn.id, resp.Values, tn.want)
		}
	}
}
