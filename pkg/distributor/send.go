package distributor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ingesterRequest is one ingester's share of a push.
type ingesterRequest struct {
	prompb.WriteRequest
	buf []byte
}

// send pushes one ingester's share of a request. Its series travel as
// their encoded records in XXX_unrecognized, which gogo's Marshal writes
// out verbatim: a record is a valid timeseries field, and encoding each
// series once, or not at all, instead of once per replica, is the largest
// saving of the write path. The request is therefore only meaningful
// marshalled, as client.Conn's gRPC codec does.
func (d *Distributor) send(ctx context.Context, inst ring.InstanceDesc, req *prompb.WriteRequest, b *batch, idx []int) error {
	c, err := d.pool.Get(inst.Addr)
	if err != nil {
		return err
	}
	ir, _ := d.ingesterReq.Get().(*ingesterRequest)
	if ir == nil {
		ir = &ingesterRequest{}
	}
	wr, nSeries, series := &ir.WriteRequest, len(b.records), 0
	if len(idx) == len(b.keys) {
		// This ingester gets everything: the arena is its request.
		series = nSeries
		wr.XXX_unrecognized = b.arena
		for _, i := range idx[nSeries:] {
			wr.Metadata = append(wr.Metadata, req.Metadata[b.metadata[i-nSeries]])
		}
	} else {
		buf := ir.buf[:0]
		for _, i := range idx {
			if i < nSeries {
				r := b.records[i]
				buf = append(buf, b.arena[r[0]:r[1]]...)
				series++
			} else {
				wr.Metadata = append(wr.Metadata, req.Metadata[b.metadata[i-nSeries]])
			}
		}
		ir.buf = buf
		wr.XXX_unrecognized = buf
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RemoteTimeout)
	_, err = c.Push(ctx, wr)
	cancel()

	for _, kind := range [...]struct {
		name string
		n    int
	}{{"samples", series}, {"metadata", len(wr.Metadata)}} {
		if kind.n == 0 {
			continue
		}
		d.metrics.ingesterAppends.WithLabelValues(inst.Addr, kind.name).Inc()
		if err != nil {
			st := "5xx"
			if isClientError(err) {
				st = "4xx"
			}
			d.metrics.ingesterAppendFailures.WithLabelValues(inst.Addr, kind.name, st).Inc()
		}
	}
	// Drop the references into the request before pooling.
	clear(wr.Metadata)
	wr.Metadata, wr.XXX_unrecognized = wr.Metadata[:0], nil
	if cap(ir.buf) <= maxPooledBytes {
		d.ingesterReq.Put(ir)
	}
	return err
}

// isClientError tells the ingester answers that retrying cannot fix: the
// data itself is refused. DoBatch answers with such an error when a quorum
// of replicas gave one.
func isClientError(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange, codes.AlreadyExists, codes.ResourceExhausted:
		return true
	}
	return false
}

// failures records the ingesters that failed during one push.
type failures struct {
	mu       sync.Mutex
	errs     []string
	down     atomic.Bool // some ingester was unreachable or too slow
	timedOut atomic.Bool // some ingester did not answer within the remote timeout
}

func (f *failures) add(inst ring.InstanceDesc, err error) {
	switch status.Code(err) {
	case codes.DeadlineExceeded:
		f.down.Store(true)
		f.timedOut.Store(true)
	case codes.Unavailable, codes.Canceled:
		f.down.Store(true)
	}
	msg := err.Error()
	if st, ok := status.FromError(err); ok {
		msg = st.Code().String() + ": " + st.Message()
	}
	f.mu.Lock()
	f.errs = append(f.errs, fmt.Sprintf("ingester %s (%s): %s", inst.Id, inst.Addr, msg))
	f.mu.Unlock()
}

// batchError turns DoBatch's error into one answer: the ingesters' own
// message for refused data (4xx), or which ingesters failed (5xx).
func (d *Distributor) batchError(ctx context.Context, err error, f *failures) error {
	if isClientError(err) {
		code := http.StatusBadRequest
		if status.Code(err) == codes.ResourceExhausted {
			code = http.StatusTooManyRequests
		}
		return &PushError{Code: code, Msg: status.Convert(err).Message()}
	}
	rf := d.ring.ReplicationFactor()
	if errors.Is(err, ring.ErrTooManyUnhealthyInstances) || errors.Is(err, ring.ErrEmptyRing) {
		return &PushError{Code: http.StatusServiceUnavailable, Msg: fmt.Sprintf("cannot write: %v (replication factor %d needs %d healthy ingesters per series)", err, rf, rf/2+1)}
	}
	f.mu.Lock()
	failed := strings.Join(f.errs, "; ")
	n := len(f.errs)
	f.mu.Unlock()
	if n == 0 && ctx.Err() == nil {
		// No ingester was called: the ring could not place a series on a
		// quorum of healthy ingesters, and its error names the unhealthy ones.
		return &PushError{Code: http.StatusServiceUnavailable, Msg: fmt.Sprintf("cannot write: too many unhealthy ingesters for the quorum (replication factor %d needs %d healthy ingesters per series; an ingester is unhealthy when its last ring heartbeat is older than -ring.heartbeat-timeout or it is not ACTIVE): %v", rf, rf/2+1, err)}
	}
	code := http.StatusInternalServerError
	if f.down.Load() || ctx.Err() != nil {
		code = http.StatusServiceUnavailable
	}
	msg := fmt.Sprintf("write not acknowledged by a quorum of ingesters (replication factor %d, quorum %d)", rf, rf/2+1)
	if ctx.Err() != nil || f.timedOut.Load() {
		msg += fmt.Sprintf(" within -distributor.remote-timeout (%s)", d.cfg.RemoteTimeout)
	}
	if n > 0 {
		msg += fmt.Sprintf(": %d failed: %s", n, failed)
	}
	return &PushError{Code: code, Msg: msg}
}
