package client

import (
	"sync"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/remotewrite"
)

// PushRequest is a Push request as the ingester's gRPC server decodes it:
// the prompb.WriteRequest clients send (the wire format is the same), whose
// label strings point into a copy of the message bytes that the request
// owns, instead of being copied one by one as gogo's generated code does
// (at 1,000 series of 8 labels, 16,000 strings and 2,000 slices per
// request). Exemplars, native histograms and metadata are decoded by
// gogo's code and own their memory.
//
// The server gets requests from a pool and releases them once Push has
// returned: Push must not keep a string or slice of the request, but copy
// what it stores.
type PushRequest struct {
	prompb.WriteRequest
	buf []byte // the message bytes, which the labels point into
}

// maxPooledPushBytes bounds the requests kept for reuse, so that one huge
// request does not pin its memory for good.
const maxPooledPushBytes = 16 << 20

var pushRequests = sync.Pool{New: func() any { return new(PushRequest) }}

// GetPushRequest returns an empty request from the pool.
func GetPushRequest() *PushRequest { return pushRequests.Get().(*PushRequest) }

// Release returns r to the pool; neither r nor any string or slice of it
// may be used afterwards.
func (r *PushRequest) Release() {
	if cap(r.buf) > maxPooledPushBytes {
		return
	}
	pushRequests.Put(r)
}

// Unmarshal decodes data, which it copies: data may be reused once it
// returns.
func (r *PushRequest) Unmarshal(data []byte) error {
	r.buf = append(r.buf[:0], data...)
	return remotewrite.DecodeV1(r.buf, &r.WriteRequest, nil)
}

// XXX_Unmarshal is Unmarshal, for gogo's proto.Unmarshal.
func (r *PushRequest) XXX_Unmarshal(data []byte) error { return r.Unmarshal(data) }
