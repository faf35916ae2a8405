package client

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func streamTestRequest() *prompb.WriteRequest {
	return &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{{
			Labels:  []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "api"}},
			Samples: []prompb.Sample{{Timestamp: 1000, Value: 1}},
		}},
		Metadata: []prompb.MetricMetadata{{MetricFamilyName: "up", Type: prompb.MetricMetadata_GAUGE, Help: "Up."}},
	}
}

// The hand-encoded push is the StreamPushRequest of ingester.proto, and
// the ingester's decoder reads what the generated code writes.
func TestStreamPushWireFormat(t *testing.T) {
	req := streamTestRequest()
	want, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b, err := encodeStreamPush(7, "team-a", "v1/42", req)
	if err != nil {
		t.Fatal(err)
	}
	var generated StreamPushRequest
	if err := proto.Unmarshal(b, &generated); err != nil {
		t.Fatal(err)
	}
	if generated.Id != 7 || generated.TenantId != "team-a" || generated.Signature != "v1/42" || string(generated.Request) != string(want) {
		t.Fatalf("generated code read id %d tenant %q signature %q and %d request bytes, want 7, team-a, v1/42 and %d", generated.Id, generated.TenantId, generated.Signature, len(generated.Request), len(want))
	}

	fromGenerated, err := proto.Marshal(&StreamPushRequest{Id: 9, TenantId: "team-b", Request: want})
	if err != nil {
		t.Fatal(err)
	}
	var m StreamPushMessage
	if err := m.Unmarshal(fromGenerated); err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	if m.ID != 9 || m.TenantID != "team-b" || m.Signature != "" {
		t.Fatalf("decoded id %d tenant %q signature %q, want 9, team-b and none", m.ID, m.TenantID, m.Signature)
	}
	ts := m.Request.Timeseries
	if len(ts) != 1 || len(ts[0].Labels) != 2 || ts[0].Labels[1].Value != "api" || ts[0].Samples[0].Value != 1 || len(m.Request.Metadata) != 1 || m.Request.Metadata[0].Help != "Up." {
		t.Fatalf("decoded request %+v, want the one encoded", m.Request.WriteRequest)
	}

	if err := m.Unmarshal([]byte{0x22, 0x05, 0x01}); err == nil {
		t.Fatal("a truncated request field decoded without error")
	}
}

// An answer on the stream turns into what a Push call returns, the
// refusal details included.
func TestStreamPushResult(t *testing.T) {
	resp, err := streamPushResult(&StreamPushResponse{Id: 1})
	if err != nil || resp == nil {
		t.Fatalf("OK answer: %v %v", resp, err)
	}
	partial := &PushResponse{First: "out of order sample", Refused: []*SeriesRefusal{{Series: 2, Samples: 1}}}
	_, err = streamPushResult(&StreamPushResponse{Id: 2, Code: int32(codes.InvalidArgument), Message: "out of order sample (and 0 more)", Response: partial})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument || st.Message() != "out of order sample (and 0 more)" || len(st.Details()) != 1 {
		t.Fatalf("partial answer: %v with %d details, want InvalidArgument with the PushResponse", err, len(st.Details()))
	}
	if d := st.Details()[0].(*PushResponse); d.First != "out of order sample" || d.Refused[0].Series != 2 {
		t.Fatalf("details %+v", d)
	}
}

func TestStreamSignature(t *testing.T) {
	orgID := StreamWorkerOrgID("127.0.0.1:9095")
	if orgID != "ingester-127.0.0.1-9095-stream-push-worker-0" || !IsStreamWorkerOrgID(orgID) || IsStreamWorkerOrgID("team-a") {
		t.Fatalf("worker org ID %q", orgID)
	}
	// Hex HMAC-SHA256 of the org ID under the key, as Cortex computes it
	// (Python: hmac.new(b"k1", b"team-a", hashlib.sha256).hexdigest()).
	if got, want := StreamSignature("k1", "team-a"), "1fa5682322511a11d96f47dbf2dd24409b3317cb3000e601bbeb3e1dc864bf61"; got != want {
		t.Fatalf("signature %q, want %q", got, want)
	}
}

// endedStream is a PushStream the ingester ended with a status: sends see
// io.EOF at once, and the status reaches the receiver only after a send
// has seen it, the order that hides the status if a send's EOF is taken as
// the reason.
type endedStream struct {
	grpc.ClientStream
	sent   chan struct{}
	once   sync.Once
	status error
}

func (s *endedStream) SendMsg(any) error {
	s.once.Do(func() { close(s.sent) })
	return io.EOF
}

func (s *endedStream) RecvMsg(any) error {
	<-s.sent
	return s.status
}

type endedConn struct {
	grpc.ClientConnInterface
	stream *endedStream
}

func (c endedConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.stream, nil
}

// A push on a stream the ingester ended fails with the ingester's status,
// not with the io.EOF its send saw.
func TestStreamPushReportsTheIngestersStatus(t *testing.T) {
	refused := status.Error(codes.Unauthenticated, "signature mismatch: signed with none of the ingester's -distributor.sign-write-requests-keys")
	conn := endedConn{stream: &endedStream{sent: make(chan struct{}), status: refused}}
	p := newStreamPusher(conn, "127.0.0.1:9095", "stale")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := p.push(ctx, "team-a", "", streamTestRequest())
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "signed with none of the ingester's -distributor.sign-write-requests-keys") {
		t.Fatalf("push on an ended stream: %v, want Unauthenticated naming the keys", err)
	}
}
