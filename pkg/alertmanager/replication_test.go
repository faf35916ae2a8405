package alertmanager

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/silence/silencepb"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cortex-tls/cortex/pkg/alertmanager/alertmanagerpb"
	cortextenant "github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
)

func newSilences(t *testing.T) *silence.Silences {
	t.Helper()
	s, err := silence.New(silence.Options{Retention: time.Hour, Metrics: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStateMergesBetweenReplicas: a silence set on one replica reaches
// another through its broadcast (UpdateState's part) and through its full
// state (ReadState's answer).
func TestStateMergesBetweenReplicas(t *testing.T) {
	am := &MultitenantAlertmanager{}
	a, b, c := newSilences(t), newSilences(t), newSilences(t)
	sa := newReplicatedState("tenant-a", am, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	sb := newReplicatedState("tenant-a", am, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	sc := newReplicatedState("tenant-a", am, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	a.SetBroadcast(sa.add(silencesKeyPrefix+"tenant-a", a).Broadcast)
	sb.add(silencesKeyPrefix+"tenant-a", b)
	sc.add(silencesKeyPrefix+"tenant-a", c)

	now := time.Now()
	sil := &silencepb.Silence{
		Matchers: []*silencepb.Matcher{{Name: "alertname", Pattern: "Maintenance", Type: silencepb.Matcher_EQUAL}},
		StartsAt: timestamppb.New(now), EndsAt: timestamppb.New(now.Add(time.Hour)),
		CreatedBy: "test", Comment: "planned",
	}
	if err := a.Set(t.Context(), sil); err != nil {
		t.Fatal(err)
	}
	var part *alertmanagerpb.Part
	select {
	case part = <-sa.msgc:
	default:
		t.Fatal("setting a silence broadcast nothing")
	}
	if part.GetKey() != "sil:tenant-a" {
		t.Fatalf("part key %q", part.GetKey())
	}
	if err := sb.merge(part); err != nil {
		t.Fatal(err)
	}
	if got, _, err := b.Query(t.Context(), silence.QIDs(sil.Id)); err != nil || len(got) != 1 {
		t.Fatalf("silence not merged from the broadcast: %v %v", got, err)
	}

	full, err := sa.full()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range full {
		if err := sc.merge(p); err != nil {
			t.Fatal(err)
		}
	}
	if got, _, err := c.Query(t.Context(), silence.QIDs(sil.Id)); err != nil || len(got) != 1 {
		t.Fatalf("silence not merged from the full state: %v %v", got, err)
	}
	if err := sc.merge(&alertmanagerpb.Part{Key: "nfl:tenant-a", Data: []byte("x")}); err == nil || !strings.Contains(err.Error(), `tenant "tenant-a" has no state "nfl:tenant-a"`) {
		t.Fatalf("merge of an unknown key: %v", err)
	}
}

// grpcHarness serves the alertmanager gRPC service of am on loopback,
// with the tenant taken from the call's metadata as the process's server
// does, and returns a client.
func grpcHarness(t *testing.T, am *MultitenantAlertmanager) alertmanagerpb.AlertmanagerClient {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The process's server bounds messages with -server.grpc-max-recv-msg-size;
	// here the bound is raised so that the handler's own is tested.
	s := grpc.NewServer(append(cortextenant.ServerInterceptors(), grpc.ForceServerCodecV2(grpccodec.Codec{}), grpc.MaxRecvMsgSize(maxStateMsgSize))...)
	am.RegisterGRPC(s)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	var cfg ClientConfig
	cfg.RegisterFlags(flag.NewFlagSet("alertmanager", flag.PanicOnError))
	cfg.MaxRecvMsgSize, cfg.MaxSendMsgSize = maxStateMsgSize, maxStateMsgSize
	pool := NewClientPool(cfg, nil)
	t.Cleanup(func() { _ = pool.Close() })
	c, err := pool.client(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestForwardedRequestsCarryNoCredentials: a forwarded request reaches
// the tenant's API with the call's tenant, its content negotiation
// headers only, and only under the v2 API, bounded in size.
func TestForwardedRequestsCarryNoCredentials(t *testing.T) {
	var got *http.Request
	am := &MultitenantAlertmanager{cfg: Config{MaxRecvMsgSize: 1 << 20}, states: map[string]*replicatedState{}}
	am.local = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "secret=1")
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte(`"ok"`))
	})
	c := grpcHarness(t, am)
	ctx := cortextenant.Inject(context.Background(), "tenant-a")
	resp, err := c.HandleRequest(ctx, &alertmanagerpb.HTTPRequest{
		Method: http.MethodGet, Url: APIPrefix + "/silences?filter=a",
		Headers: []*alertmanagerpb.Header{
			{Key: "Accept", Values: []string{"application/json"}},
			{Key: "Authorization", Values: []string{"Bearer secret"}},
			{Key: "X-Scope-OrgID", Values: []string{"tenant-b"}},
			{Key: "Cookie", Values: []string{"session=1"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetCode() != http.StatusTeapot || string(resp.GetBody()) != `"ok"` || len(resp.GetHeaders()) != 1 || resp.GetHeaders()[0].GetKey() != "Content-Type" {
		t.Fatalf("answer %+v", resp)
	}
	if id, err := cortextenant.ID(got.Context()); err != nil || id != "tenant-a" {
		t.Fatalf("tenant %q %v", id, err)
	}
	if got.Header.Get("Authorization") != "" || got.Header.Get("Cookie") != "" || got.Header.Get("X-Scope-OrgID") != "" || got.Header.Get("Accept") != "application/json" {
		t.Fatalf("forwarded headers %v", got.Header)
	}
	if got.URL.Path != APIPrefix+"/silences" || got.URL.RawQuery != "filter=a" {
		t.Fatalf("forwarded URL %v", got.URL)
	}

	for _, tc := range []struct {
		req  *alertmanagerpb.HTTPRequest
		code codes.Code
		want string
	}{
		{&alertmanagerpb.HTTPRequest{Method: http.MethodGet, Url: "/api/v1/alerts"}, codes.InvalidArgument, "only the tenant's /alertmanager/api/v2 API and web UI are forwarded, not GET \"/api/v1/alerts\""},
		{&alertmanagerpb.HTTPRequest{Method: http.MethodPost, Url: "/alertmanager/"}, codes.InvalidArgument, "only the tenant's /alertmanager/api/v2 API and web UI are forwarded, not POST \"/alertmanager/\""},
		{&alertmanagerpb.HTTPRequest{Method: http.MethodPut, Url: APIPrefix + "/alerts"}, codes.InvalidArgument, `method "PUT" is not forwarded`},
		{&alertmanagerpb.HTTPRequest{Method: http.MethodPost, Url: APIPrefix + "/alerts", Body: make([]byte, 1<<20+1)}, codes.ResourceExhausted, "request body larger than 1048576 bytes (-alertmanager.max-recv-msg-size)"},
	} {
		_, err := c.HandleRequest(ctx, tc.req)
		if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s %s: %v", tc.req.GetMethod(), tc.req.GetUrl(), err)
		}
	}
	if _, err := c.HandleRequest(context.Background(), &alertmanagerpb.HTTPRequest{Method: http.MethodGet, Url: APIPrefix + "/status"}); err == nil || !strings.Contains(err.Error(), "no tenant in the context") {
		t.Fatalf("call without a tenant: %v", err)
	}
}

// TestUpdateStateOnlyForTheCallsTenant: a caller acting for tenant-b
// cannot change tenant-a's state, and a tenant not running here is
// refused rather than created.
func TestUpdateStateOnlyForTheCallsTenant(t *testing.T) {
	am := &MultitenantAlertmanager{states: map[string]*replicatedState{}}
	st := newReplicatedState("tenant-a", am, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	st.add(silencesKeyPrefix+"tenant-a", newSilences(t))
	am.states["tenant-a"] = st
	c := grpcHarness(t, am)

	_, err := c.UpdateState(cortextenant.Inject(context.Background(), "tenant-b"), &alertmanagerpb.Part{Key: "sil:tenant-a"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `state key "sil:tenant-a" is not tenant "tenant-b"'s`) {
		t.Fatalf("tenant-b writing tenant-a's state: %v", err)
	}
	_, err = c.UpdateState(cortextenant.Inject(context.Background(), "tenant-c"), &alertmanagerpb.Part{Key: "sil:tenant-c"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("state of a tenant not running here: %v", err)
	}
	_, err = c.ReadState(cortextenant.Inject(context.Background(), "tenant-c"), &alertmanagerpb.ReadStateRequest{})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("reading a tenant not running here: %v", err)
	}
	resp, err := c.ReadState(cortextenant.Inject(context.Background(), "tenant-a"), &alertmanagerpb.ReadStateRequest{})
	if err != nil || len(resp.GetParts()) != 1 || resp.GetParts()[0].GetKey() != "sil:tenant-a" {
		t.Fatalf("ReadState: %v %v", resp, err)
	}
}
