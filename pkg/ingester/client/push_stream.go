package client

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// PushStream messages travel through the project's gRPC codec as
// hand-encoded StreamPushRequests: the request's series go out as the
// distributor encoded them, and come in decoded in place by PushRequest,
// with no copy of the request field in between. The generated
// StreamPushRequest documents the wire format and checks it in tests.
//
// Measured by BenchmarkStreamPushEncoding (a 1,000-series request, 2 cores,
// 2026-12-07, medians of -count=6 with -benchmem in one run), the generated
// StreamPushRequest against this encoding takes, to encode, 1.4x the time
// (390 against 279 µs), 2.0x the bytes (459 against 229 KB) and 3
// allocations against 1; to decode into a PushRequest, 1.5x the time (559
// against 367 µs), 250 KB against 0.9 KB and 50 allocations against 3.

// StreamPushConcurrency is how many pushes of one PushStream an ingester
// runs at once, Cortex's 100 stream workers per ingester client. Further
// messages wait in the stream (gRPC flow control holds the sender back).
const StreamPushConcurrency = 100

// StreamSignatureHeader carries, with -distributor.sign-write-requests-keys,
// the HMAC-SHA256 of the stream's X-Scope-OrgID under the distributor's
// first key, Cortex's x-stream-signature.
const StreamSignatureHeader = "x-stream-signature"

// streamWorkerOrgID is the X-Scope-OrgID a distributor opens a PushStream
// with, Cortex's: the stream is no tenant's, each message names its own.
var streamWorkerOrgID = regexp.MustCompile(`^ingester-.+-stream-push-worker-\d+$`)

// StreamWorkerOrgID is the X-Scope-OrgID of the PushStream to the
// ingester at addr, as Cortex names its stream workers (a colon is not
// allowed in a tenant ID).
func StreamWorkerOrgID(addr string) string {
	return "ingester-" + strings.ReplaceAll(addr, ":", "-") + "-stream-push-worker-0"
}

// IsStreamWorkerOrgID tells the X-Scope-OrgID of a distributor's PushStream
// from a tenant's.
func IsStreamWorkerOrgID(orgID string) bool { return streamWorkerOrgID.MatchString(orgID) }

// StreamSignature is the signature of a PushStream opened as orgID, under key.
func StreamSignature(key, orgID string) string {
	mac := hmac.New(sha256.New, []byte(key))
	_, _ = mac.Write([]byte(orgID))
	return hex.EncodeToString(mac.Sum(nil))
}

// VerifyStreamSignature checks the signature a PushStream opened as orgID
// carries in ctx's metadata against keys, any of which may have signed it
// (a key rotation lists the new key and the old one).
func VerifyStreamSignature(ctx context.Context, orgID string, keys []string) error {
	got := metadata.ValueFromIncomingContext(ctx, StreamSignatureHeader)
	if len(got) != 1 {
		return status.Errorf(codes.Unauthenticated, "push stream of %q has %d %s values, want 1 (-distributor.sign-write-requests-keys is set in the ingester; set it in the distributors too)", orgID, len(got), StreamSignatureHeader)
	}
	for _, key := range keys {
		if subtle.ConstantTimeCompare([]byte(got[0]), []byte(StreamSignature(key, orgID))) == 1 {
			return nil
		}
	}
	return status.Errorf(codes.Unauthenticated, "push stream of %q: signature mismatch: signed with none of the ingester's -distributor.sign-write-requests-keys", orgID)
}

// encodedMessage is a message already encoded, which the codec sends as it is.
type encodedMessage []byte

func (m encodedMessage) Marshal() ([]byte, error) { return m, nil }
func (encodedMessage) Unmarshal([]byte) error {
	return errors.New("an encoded message is only sent")
}

// encodeStreamPush encodes a StreamPushRequest with req as its request,
// marshalled straight into the message's buffer.
func encodeStreamPush(id uint64, tenantID, signature string, req *prompb.WriteRequest) ([]byte, error) {
	n := req.Size()
	size := protowire.SizeTag(1) + protowire.SizeVarint(id) +
		protowire.SizeTag(2) + protowire.SizeBytes(len(tenantID)) +
		protowire.SizeTag(4) + protowire.SizeBytes(n)
	if signature != "" {
		size += protowire.SizeTag(3) + protowire.SizeBytes(len(signature))
	}
	b := make([]byte, 0, size)
	b = protowire.AppendVarint(protowire.AppendTag(b, 1, protowire.VarintType), id)
	b = protowire.AppendString(protowire.AppendTag(b, 2, protowire.BytesType), tenantID)
	if signature != "" {
		b = protowire.AppendString(protowire.AppendTag(b, 3, protowire.BytesType), signature)
	}
	b = protowire.AppendVarint(protowire.AppendTag(b, 4, protowire.BytesType), uint64(n))
	start := len(b)
	b = b[:start+n]
	if _, err := req.MarshalToSizedBuffer(b[start:]); err != nil {
		return nil, fmt.Errorf("encoding a push of tenant %q: %w", tenantID, err)
	}
	return b, nil
}

// StreamPushMessage is a StreamPushRequest as the ingester decodes it: its
// request is a pooled PushRequest, released with Release.
type StreamPushMessage struct {
	ID        uint64
	TenantID  string
	Signature string
	Request   *PushRequest
}

// Unmarshal decodes data, which it does not keep.
func (m *StreamPushMessage) Unmarshal(data []byte) error {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return fmt.Errorf("decoding a push stream message: %w", protowire.ParseError(n))
		}
		data = data[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			m.ID, n = protowire.ConsumeVarint(data)
		case num == 2 && typ == protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(data)
			m.TenantID = string(v)
		case num == 3 && typ == protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(data)
			m.Signature = string(v)
		case num == 4 && typ == protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(data)
			if n >= 0 {
				if m.Request == nil {
					m.Request = GetPushRequest()
				}
				if err := m.Request.Unmarshal(v); err != nil {
					return fmt.Errorf("decoding the request of a push stream message: %w", err)
				}
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, data)
		}
		if n < 0 {
			return fmt.Errorf("decoding field %d of a push stream message: %w", num, protowire.ParseError(n))
		}
		data = data[n:]
	}
	if m.Request == nil {
		m.Request = GetPushRequest()
		m.Request.WriteRequest = prompb.WriteRequest{}
	}
	return nil
}

// Marshal encodes the message.
func (m *StreamPushMessage) Marshal() ([]byte, error) {
	req := &prompb.WriteRequest{}
	if m.Request != nil {
		req = &m.Request.WriteRequest
	}
	return encodeStreamPush(m.ID, m.TenantID, m.Signature, req)
}

// Release returns the message's request to the pool.
func (m *StreamPushMessage) Release() {
	if m.Request != nil {
		m.Request.Release()
		m.Request = nil
	}
}

// PushStreamServer is the ingester's side of a PushStream.
type PushStreamServer interface {
	Recv() (*StreamPushMessage, error)
	Send(*StreamPushResponse) error
	grpc.ServerStream
}

type pushStreamServer struct{ grpc.ServerStream }

func (s *pushStreamServer) Recv() (*StreamPushMessage, error) {
	m := &StreamPushMessage{}
	if err := s.RecvMsg(m); err != nil {
		m.Release()
		return nil, err
	}
	return m, nil
}

func (s *pushStreamServer) Send(m *StreamPushResponse) error { return s.SendMsg(m) }

// PushFunc stores one push of a stream, answering as Push does.
type PushFunc func(ctx context.Context, m *StreamPushMessage) (*PushResponse, error)

// ServePushStream answers the pushes of a stream with push, up to
// StreamPushConcurrency at once, each answer carrying its request's id, and
// returns when the client closes its side and every push is answered. A
// refused push is answered like any other: the stream goes on.
func ServePushStream(stream PushStreamServer, push PushFunc) error {
	ctx := stream.Context()
	var (
		wg     sync.WaitGroup
		sendMu sync.Mutex
		slots  = make(chan struct{}, StreamPushConcurrency)
	)
	defer wg.Wait()
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			m.Release()
			return status.FromContextError(ctx.Err()).Err()
		}
		wg.Add(1)
		go func() {
			defer func() {
				<-slots
				wg.Done()
			}()
			resp, err := push(ctx, m)
			out := &StreamPushResponse{Id: m.ID, Response: resp}
			m.Release()
			if err != nil {
				st := status.Convert(err)
				out.Code, out.Message = int32(st.Code()), st.Message()
				for _, d := range st.Details() {
					if pr, ok := d.(*PushResponse); ok {
						out.Response = pr
					}
				}
			}
			sendMu.Lock()
			defer sendMu.Unlock()
			// A failed send ends the stream, which Recv reports.
			_ = stream.Send(out)
		}()
	}
}

// streamPushResult turns an answer into Push's: the PushResponse, or the
// error with its details.
func streamPushResult(r *StreamPushResponse) (*PushResponse, error) {
	if codes.Code(r.Code) == codes.OK {
		if r.Response == nil {
			return &PushResponse{}, nil
		}
		return r.Response, nil
	}
	st := status.New(codes.Code(r.Code), r.Message)
	if r.Response != nil {
		if withDetails, err := st.WithDetails(r.Response); err == nil {
			st = withDetails
		}
	}
	return nil, st.Err()
}
