package client

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// streamPusher sends the pushes to one ingester over one long-lived
// PushStream (-distributor.use-stream-push): many pushes in flight at once,
// each answer matched to its push by id. A stream that breaks fails the
// pushes waiting on it; the next push opens a new one.
type streamPusher struct {
	cc      grpc.ClientConnInterface
	addr    string
	signKey string // first of -distributor.sign-write-requests-keys, or ""

	mu     sync.Mutex
	cur    *pushStream
	closed bool
}

// pushStream is one PushStream, opening until ready is closed.
type pushStream struct {
	cancel context.CancelFunc
	ready  chan struct{} // closed once the stream is open, or failed to open
	sends  chan encodedMessage
	done   chan struct{} // closed when the stream broke

	mu      sync.Mutex
	err     error // why the stream broke
	nextID  uint64
	pending map[uint64]chan *StreamPushResponse
}

// sendQueue bounds the encoded pushes waiting for the stream's sender.
const sendQueue = StreamPushConcurrency

func newStreamPusher(cc grpc.ClientConnInterface, addr, signKey string) *streamPusher {
	return &streamPusher{cc: cc, addr: addr, signKey: signKey}
}

// stream returns the current stream, starting to open one if there is
// none or it broke. Opening waits for the connection, so it runs on its
// own: the pushes wait for it only as long as their contexts allow.
func (p *streamPusher) stream() (*pushStream, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, status.Errorf(codes.Unavailable, "push stream to ingester %s: connection closed", p.addr)
	}
	if p.cur != nil {
		select {
		case <-p.cur.done:
		default:
			return p.cur, nil
		}
	}
	orgID := StreamWorkerOrgID(p.addr)
	ctx, cancel := context.WithCancel(tenant.Inject(context.Background(), orgID))
	if p.signKey != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, StreamSignatureHeader, StreamSignature(p.signKey, orgID))
	}
	s := &pushStream{
		cancel:  cancel,
		ready:   make(chan struct{}),
		sends:   make(chan encodedMessage, sendQueue),
		done:    make(chan struct{}),
		pending: map[uint64]chan *StreamPushResponse{},
	}
	go func() {
		defer close(s.ready)
		cs, err := p.cc.NewStream(ctx, &serviceDesc.Streams[2], "/"+ServiceName+"/PushStream")
		if err != nil {
			s.fail(err)
			return
		}
		go s.send(ctx, cs)
		go s.receive(cs)
	}()
	p.cur = s
	return s, nil
}

// send writes the queued pushes to the stream.
func (s *pushStream) send(ctx context.Context, cs grpc.ClientStream) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-s.sends:
			if err := cs.SendMsg(m); err != nil {
				// io.EOF: the ingester ended the stream, and receive
				// fails it with the ingester's status, which names why.
				if !errors.Is(err, io.EOF) {
					s.fail(err)
				}
				return
			}
		}
	}
}

// receive hands each answer to the push waiting for it.
func (s *pushStream) receive(cs grpc.ClientStream) {
	for {
		r := &StreamPushResponse{}
		if err := cs.RecvMsg(r); err != nil {
			s.fail(err)
			return
		}
		s.mu.Lock()
		ch := s.pending[r.Id]
		delete(s.pending, r.Id)
		s.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
}

// fail breaks the stream: the pushes waiting on it get err.
func (s *pushStream) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	s.err = err
	close(s.done)
	s.cancel()
}

func (s *pushStream) register() (uint64, chan *StreamPushResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, nil, s.err
	}
	s.nextID++
	ch := make(chan *StreamPushResponse, 1)
	s.pending[s.nextID] = ch
	return s.nextID, ch, nil
}

func (s *pushStream) forget(id uint64) {
	s.mu.Lock()
	delete(s.pending, id)
	s.mu.Unlock()
}

// brokenError is the error of a push whose stream broke before answering.
func (p *streamPusher) brokenError(err error) error {
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return status.Errorf(st.Code(), "push stream to ingester %s: %s", p.addr, st.Message())
	}
	return status.Errorf(codes.Unavailable, "push stream to ingester %s broke: %v", p.addr, err)
}

// push sends req, signed with signature when not empty, as a push of
// tenantID, and waits for its answer or ctx. req may be reused once push
// returns: it is encoded before.
func (p *streamPusher) push(ctx context.Context, tenantID, signature string, req *prompb.WriteRequest) (*PushResponse, error) {
	s, err := p.stream()
	if err != nil {
		return nil, err
	}
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	id, ch, err := s.register()
	if err != nil {
		return nil, p.brokenError(err)
	}
	msg, err := encodeStreamPush(id, tenantID, signature, req)
	if err != nil {
		s.forget(id)
		return nil, status.Error(codes.Internal, err.Error())
	}
	select {
	case s.sends <- msg:
	case <-s.done:
		s.forget(id)
		return nil, p.brokenError(s.brokenErr())
	case <-ctx.Done():
		s.forget(id)
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	select {
	case r := <-ch:
		return streamPushResult(r)
	case <-s.done:
		// An answer may have arrived before the stream broke.
		select {
		case r := <-ch:
			return streamPushResult(r)
		default:
		}
		s.forget(id)
		return nil, p.brokenError(s.brokenErr())
	case <-ctx.Done():
		s.forget(id)
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func (s *pushStream) brokenErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// close ends the open stream; later pushes fail.
func (p *streamPusher) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.cur != nil {
		p.cur.fail(errors.New("connection closed"))
	}
}
