package ingester

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/grpcclient"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// streamMessage encodes a push of tenantID as a PushStream message.
func streamMessage(t *testing.T, id uint64, tenantID, signature string, series ...prompb.TimeSeries) *client.StreamPushRequest {
	t.Helper()
	b, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return &client.StreamPushRequest{Id: id, TenantId: tenantID, Signature: signature, Request: b}
}

// exchange sends m on stream and returns the answer.
func exchange(t *testing.T, stream client.PushStreamClient, m *client.StreamPushRequest) *client.StreamPushResponse {
	t.Helper()
	if err := stream.Send(m); err != nil {
		t.Fatalf("sending message %d: %v", m.Id, err)
	}
	r, err := stream.Recv()
	if err != nil {
		t.Fatalf("answer to message %d: %v", m.Id, err)
	}
	if r.Id != m.Id {
		t.Fatalf("answer to message %d carries id %d", m.Id, r.Id)
	}
	return r
}

// A PushStream opened as a tenant takes that tenant's pushes only; a
// refused message is answered and the stream goes on.
func TestPushStreamRefusesAnotherTenantPerMessage(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	stream, err := h.conn.PushStream(ctxFor("t"))
	if err != nil {
		t.Fatal(err)
	}
	r := exchange(t, stream, streamMessage(t, 1, "u", "", floats(series("up", "job", "u"), float64(base), 1)))
	if codes.Code(r.Code) != codes.PermissionDenied || r.Message != `tenant ID mismatch: the push stream was opened as tenant "t" but its message 1 is of tenant "u"` {
		t.Fatalf("another tenant's push: %s %q, want PermissionDenied naming both tenants", codes.Code(r.Code), r.Message)
	}
	r = exchange(t, stream, streamMessage(t, 2, "bad/tenant", "", floats(series("up", "job", "u"), float64(base), 1)))
	if codes.Code(r.Code) != codes.InvalidArgument || !strings.Contains(r.Message, `tenant ID "bad/tenant" contains unsupported character '/'`) {
		t.Fatalf("an invalid tenant ID: %s %q, want InvalidArgument naming the character", codes.Code(r.Code), r.Message)
	}
	// Partly refused, as Push answers: the details say which series.
	r = exchange(t, stream, streamMessage(t, 3, "t",
		"", floats(series("up", "job", "t"), float64(base), 1), floats([]prompb.Label{{Name: "job", Value: "no-name"}}, float64(base), 1)))
	if codes.Code(r.Code) != codes.InvalidArgument || r.Response == nil || len(r.Response.Refused) != 1 || r.Response.Refused[0].Series != 1 {
		t.Fatalf("a push with one invalid series: %s %q %v, want InvalidArgument refusing series 1", codes.Code(r.Code), r.Message, r.Response)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("end of stream: %v, want io.EOF", err)
	}
	if got := h.query("t", base, base, eq("__name__", "up")); len(got) != 1 || got[0].Labels[1].Value != "t" {
		t.Fatalf("tenant t holds %v, want its own valid series", got)
	}
	if got := h.query("u", base, base, eq("__name__", "up")); len(got) != 0 {
		t.Fatalf("tenant u holds %v, want nothing", got)
	}
}

// With -distributor.use-stream-push a connection's pushes of many
// tenants share one stream, many in flight, each answered with its own
// result.
func TestStreamPushConnection(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	conn, err := client.Dial(h.addr, client.Config{UseStreamPush: true, ConfigWithHealthCheck: grpcclient.ConfigWithHealthCheck{Config: grpcclient.Config{MaxRecvMsgSize: 100 << 20, MaxSendMsgSize: 100 << 20}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const pushes = 64
	errs := make([]error, pushes)
	var wg sync.WaitGroup
	for i := range pushes {
		wg.Go(func() {
			ts := []prompb.TimeSeries{floats(series("up", "i", fmt.Sprint(i)), float64(base), float64(i))}
			if i%2 == 1 {
				// Odd pushes carry a series without a metric name.
				ts = append(ts, floats([]prompb.Label{{Name: "i", Value: fmt.Sprint(i)}}, float64(base), 1))
			}
			_, errs[i] = conn.Push(ctxFor(fmt.Sprintf("tenant-%d", i%4)), &prompb.WriteRequest{Timeseries: ts})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i%2 == 0 && err != nil {
			t.Errorf("push %d: %v", i, err)
		}
		if i%2 == 1 && (status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), fmt.Sprintf(`{i=\"%d\"}`, i))) {
			t.Errorf("push %d: %v, want InvalidArgument naming its own series", i, err)
		}
	}
	for tn := range 4 {
		got := h.query(fmt.Sprintf("tenant-%d", tn), base, base, eq("__name__", "up"))
		if len(got) != pushes/4 {
			t.Errorf("tenant-%d holds %d series, want %d", tn, len(got), pushes/4)
		}
	}
}

// With -distributor.sign-write-requests and its keys, a PushStream must be
// signed with one of the keys, and each message with its content's
// signature, as a Push call.
func TestPushStreamSigned(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), newKV(t))
	cfg.VerifySignatures = true
	cfg.StreamSigningKeys = []string{"new", "old"}
	h := startHarness(t, cfg, newTestLimits(t, nil))
	orgID := client.StreamWorkerOrgID("10.0.0.1:9095")
	open := func(key string) client.PushStreamClient {
		ctx := ctxFor(orgID)
		if key != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, client.StreamSignatureHeader, client.StreamSignature(key, orgID))
		}
		stream, err := h.conn.PushStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return stream
	}
	ts := floats(series("up", "job", "api"), float64(base), 1)
	signer := client.NewSigner("t")
	signer.Series(&ts)

	for key, want := range map[string]string{
		"":      "push stream of \"" + orgID + "\" has 0 x-stream-signature values, want 1 (-distributor.sign-write-requests-keys is set in the ingester; set it in the distributors too)",
		"stale": "push stream of \"" + orgID + "\": signature mismatch: signed with none of the ingester's -distributor.sign-write-requests-keys",
	} {
		stream := open(key)
		_ = stream.Send(streamMessage(t, 1, "t", signer.Sum(), ts))
		_, err := stream.Recv()
		if st := status.Convert(err); st.Code() != codes.Unauthenticated || st.Message() != want {
			t.Errorf("stream signed with %q: %v, want Unauthenticated %q", key, err, want)
		}
	}

	stream := open("old") // a key being rotated out is still accepted
	r := exchange(t, stream, streamMessage(t, 1, "t", "", ts))
	if codes.Code(r.Code) != codes.FailedPrecondition {
		t.Fatalf("an unsigned message: %s %q, want FailedPrecondition", codes.Code(r.Code), r.Message)
	}
	r = exchange(t, stream, streamMessage(t, 2, "u", signer.Sum(), ts))
	if codes.Code(r.Code) != codes.DataLoss {
		t.Fatalf("tenant t's signature on a push of u: %s %q, want DataLoss", codes.Code(r.Code), r.Message)
	}
	if r = exchange(t, stream, streamMessage(t, 3, "t", signer.Sum(), ts)); r.Code != 0 {
		t.Fatalf("a signed message: %s %q", codes.Code(r.Code), r.Message)
	}
	if got := h.query("t", base, base, eq("__name__", "up")); len(got) != 1 {
		t.Fatalf("stored %v, want the signed series", got)
	}
}

// The metadata streams answer what the unary calls do, in batches of at
// most 128, under the same limits.
func TestMetadataStreamsEqualUnary(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	var ts []prompb.TimeSeries
	for i := range 300 {
		ts = append(ts, floats(series("m", "pod", fmt.Sprintf("pod-%03d", i), fmt.Sprintf("l%03d", i%200), "x"), float64(base), 1))
	}
	h.mustPush("t", ts...)
	ctx := ctxFor("t")
	sets := []*client.MatcherSet{{Matchers: []*client.LabelMatcher{{Type: client.LabelMatcher_EQ, Name: "__name__", Value: "m"}}}}

	receive := func(recv func() (proto.Message, error)) (batches []proto.Message) {
		for {
			m, err := recv()
			if err == io.EOF {
				return batches
			}
			if err != nil {
				t.Fatal(err)
			}
			batches = append(batches, m)
		}
	}
	strs := func(stream client.StringsStreamClient, err error) ([]string, []int) {
		if err != nil {
			t.Fatal(err)
		}
		var all []string
		var sizes []int
		for _, m := range receive(func() (proto.Message, error) { return stream.Recv() }) {
			all = append(all, m.(*client.StringsResponse).Values...)
			sizes = append(sizes, len(m.(*client.StringsResponse).Values))
		}
		return all, sizes
	}

	for _, limit := range []int64{0, 150} {
		names, err := h.conn.LabelNames(ctx, &client.LabelNamesRequest{EndMs: base + 1, MatcherSets: sets, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		streamed, sizes := strs(h.conn.LabelNamesStream(ctx, &client.LabelNamesRequest{EndMs: base + 1, MatcherSets: sets, Limit: limit}))
		wantN := 202 // __name__, pod and l000..l199
		if limit > 0 {
			wantN = int(limit)
		}
		if len(names.Values) != wantN || !slices.Equal(streamed, names.Values) || !slices.Equal(sizes, batchSizes(wantN)) {
			t.Errorf("limit %d: label names streamed %d in batches %v, unary %d, want %d in batches of at most 128", limit, len(streamed), sizes, len(names.Values), wantN)
		}

		values, err := h.conn.LabelValues(ctx, &client.LabelValuesRequest{Name: "pod", EndMs: base + 1, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		streamed, sizes = strs(h.conn.LabelValuesStream(ctx, &client.LabelValuesRequest{Name: "pod", EndMs: base + 1, Limit: limit}))
		wantN = 300
		if limit > 0 {
			wantN = int(limit)
		}
		if len(values.Values) != wantN || !slices.Equal(streamed, values.Values) || !slices.Equal(sizes, batchSizes(wantN)) {
			t.Errorf("limit %d: label values streamed %d in batches %v, unary %d, want %d", limit, len(streamed), sizes, len(values.Values), wantN)
		}

		unary, err := h.conn.Series(ctx, &client.SeriesRequest{EndMs: base + 1, MatcherSets: sets, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		stream, err := h.conn.SeriesStream(ctx, &client.SeriesRequest{EndMs: base + 1, MatcherSets: sets, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		var got []*client.LabelSet
		sizes = nil
		for _, m := range receive(func() (proto.Message, error) { return stream.Recv() }) {
			got = append(got, m.(*client.SeriesResponse).Series...)
			sizes = append(sizes, len(m.(*client.SeriesResponse).Series))
		}
		if len(unary.Series) != wantN || !slices.Equal(sizes, batchSizes(wantN)) || !proto.Equal(&client.SeriesResponse{Series: got}, unary) {
			t.Errorf("limit %d: series streamed %d in batches %v, unary %d, want the same %d", limit, len(got), sizes, len(unary.Series), wantN)
		}
	}

	if _, err := strsErr(h.conn.LabelValuesStream(ctx, &client.LabelValuesRequest{})); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "no label name") {
		t.Errorf("label values stream without a name: %v, want InvalidArgument as the unary call", err)
	}
}

func batchSizes(n int) []int {
	var out []int
	for ; n > 0; n -= client.MetadataStreamBatchSize {
		out = append(out, min(n, client.MetadataStreamBatchSize))
	}
	return out
}

// strsErr drains a stream and returns its error.
func strsErr(stream client.StringsStreamClient, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	var out []string
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r.Values...)
	}
}

// A push stream that breaks (the ingester's server stopped) fails the
// pushes waiting on it, and the next push opens a new one.
func TestStreamPushReopensBrokenStream(t *testing.T) {
	h := startHarness(t, testConfig(t, t.TempDir(), newKV(t)), newTestLimits(t, nil))
	conn, err := client.Dial(h.addr, client.Config{UseStreamPush: true, ConfigWithHealthCheck: grpcclient.ConfigWithHealthCheck{Config: grpcclient.Config{MaxRecvMsgSize: 100 << 20, MaxSendMsgSize: 100 << 20}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	push := func(i int) error {
		_, err := conn.Push(ctxFor("t"), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{floats(series("up", "i", fmt.Sprint(i)), float64(base), 1)}})
		return err
	}
	if err := push(0); err != nil {
		t.Fatal(err)
	}
	h.srv.Stop()
	if err := push(1); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "ingester "+h.addr) {
		t.Fatalf("push while the ingester is down: %v, want Unavailable naming it", err)
	}
	lis, err := net.Listen("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = grpc.NewServer(append([]grpc.ServerOption{grpc.ForceServerCodecV2(grpccodec.Codec{})}, tenant.ServerInterceptors()...)...)
	client.RegisterIngesterServer(h.srv, h.ing)
	go func() { _ = h.srv.Serve(lis) }()
	testkit.EventuallyNil(t, 10*time.Second, "a push over a new stream", func() error { return push(2) })
	if got := h.query("t", base, base, eq("__name__", "up")); len(got) != 2 {
		t.Fatalf("stored %d series, want the two pushed while the ingester was up", len(got))
	}
}
