package distributor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
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
func (d *Distributor) send(ctx context.Context, inst ring.InstanceDesc, req *prompb.WriteRequest, b *batch, idx []int, f *failures) error {
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
	if d.cfg.SignWriteRequests {
		ctx = metadata.AppendToOutgoingContext(ctx, client.SignatureHeader, sign(ctx, req, b, idx))
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RemoteTimeout)
	d.instance.inflightCalls.Add(1)
	resp, err := c.Push(ctx, wr)
	d.instance.inflightCalls.Add(-1)
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
	// A partly refused push is a reply like any other: what the replica
	// stored counts towards the quorum, and what it refused would be
	// refused again on a retry.
	if err == nil {
		f.reply(idx, resp, req, b)
	} else if partial := refusedPart(err); partial != nil {
		f.reply(idx, partial, req, b)
		err = nil
	}
	// Drop the references into the request before pooling.
	clear(wr.Metadata)
	wr.Metadata, wr.XXX_unrecognized = wr.Metadata[:0], nil
	if cap(ir.buf) <= maxPooledBytes {
		d.ingesterReq.Put(ir)
	}
	return err
}

// sign is the signature of one ingester's share of a push (its series
// and metadata at idx), computed from the request they were encoded from:
// the ingester computes it again from what it decoded.
func sign(ctx context.Context, req *prompb.WriteRequest, b *batch, idx []int) string {
	userID, _ := tenant.ID(ctx) // push checked it
	s := client.NewSigner(userID)
	nSeries := len(b.records)
	for _, i := range idx {
		if i >= nSeries {
			s.Metadata(&req.Metadata[b.metadata[i-nSeries]])
		}
	}
	for _, i := range idx {
		if i < nSeries {
			s.Series(&req.Timeseries[b.reqIndex[i]])
		}
	}
	return s.Sum()
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

// refusedPart returns the details of an ingester's InvalidArgument
// answer to a push it stored part of, or nil for any other error.
func refusedPart(err error) *client.PushResponse {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return nil
	}
	for _, d := range st.Details() {
		if r, ok := d.(*client.PushResponse); ok {
			return r
		}
	}
	return nil
}

// failures records the ingesters that failed during one push, and what
// the others stored.
type failures struct {
	mu       sync.Mutex
	errs     []string
	down     atomic.Bool // some ingester was unreachable or too slow
	timedOut atomic.Bool // some ingester did not answer within the remote timeout

	// clean are the ingester requests (their batch indexes) stored in
	// full, partial those stored in part.
	clean   [][]int
	partial []partialReply
	// first is the first refusal an ingester named, and firstAt the
	// index in the request of the series it is about.
	first   string
	firstAt int
}

// partialReply is an ingester request stored in part: its batch indexes,
// and for each series (by batch index) with a refusal, what it was sent
// and what it lost.
type partialReply struct {
	idx  []int
	lost map[int]seriesLoss
}

// seriesLoss counts, for one series on one replica, float samples,
// histogram samples and exemplars: sent, and refused.
type seriesLoss struct {
	sent, lost [3]int
}

// reply records a replica's answer to a push it stored: resp says what
// it refused, by index among the series it was sent (idx's first
// entries, in order).
func (f *failures) reply(idx []int, resp *client.PushResponse, req *prompb.WriteRequest, b *batch) {
	if resp == nil || (len(resp.Refused) == 0 && resp.First == "") {
		f.mu.Lock()
		f.clean = append(f.clean, idx)
		f.mu.Unlock()
		return
	}
	nSeries := len(b.records)
	local := func(j uint32) (int, bool) {
		if int(j) >= len(idx) || idx[j] >= nSeries {
			return 0, false // not a series this replica was sent
		}
		return idx[j], true
	}
	pr := partialReply{idx: idx, lost: make(map[int]seriesLoss, len(resp.Refused))}
	for _, r := range resp.Refused {
		k, ok := local(r.Series)
		if !ok {
			continue
		}
		ts := &req.Timeseries[b.reqIndex[k]]
		l := pr.lost[k]
		l.sent = [3]int{len(ts.Samples), len(ts.Histograms), len(ts.Exemplars)}
		for i, n := range [3]uint32{r.Samples, r.Histograms, r.Exemplars} {
			l.lost[i] = min(l.sent[i], l.lost[i]+int(n))
		}
		pr.lost[k] = l
	}
	firstAt := -1
	if k, ok := local(resp.FirstSeries); ok && resp.First != "" {
		firstAt = int(b.reqIndex[k])
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.partial = append(f.partial, pr)
	if firstAt >= 0 && (f.first == "" || firstAt < f.firstAt) {
		f.first, f.firstAt = resp.First, firstAt
	}
}

// quorumLoss returns what a quorum of the replicas that answered did not
// store of what was sent: for each series a replica refused something of,
// the stored counts of every replica that answered for it are ranked and
// the quorum-th largest is what the quorum stored, as Prometheus counts
// what its TSDB appended. first is the first refusal the replicas named
// and firstAt the index of its series in the request, when the quorum
// lost something; replicas beyond the quorum do not make a refusal.
func (f *failures) quorumLoss(quorum int) (lost writeStats, first string, firstAt int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.partial) == 0 {
		return writeStats{}, "", 0
	}
	defer func() {
		if lost.samples+lost.histograms+lost.exemplars > 0 {
			first, firstAt = f.first, f.firstAt
		}
	}()
	covers := func(idx []int, k int) bool {
		i, found := slices.BinarySearch(idx, k)
		return found && i < len(idx)
	}
	done := map[int]bool{}
	var stored [3][]int
	for _, p := range f.partial {
		for k, l := range p.lost {
			if done[k] {
				continue
			}
			done[k] = true
			for i := range stored {
				stored[i] = stored[i][:0]
			}
			add := func(lost [3]int) {
				for i := range stored {
					stored[i] = append(stored[i], l.sent[i]-lost[i])
				}
			}
			for _, idx := range f.clean {
				if covers(idx, k) {
					add([3]int{})
				}
			}
			for _, q := range f.partial {
				if covers(q.idx, k) {
					add(q.lost[k].lost)
				}
			}
			for i, counts := range stored {
				if len(counts) == 0 {
					continue
				}
				slices.SortFunc(counts, func(a, b int) int { return b - a })
				missing := l.sent[i] - counts[min(quorum, len(counts))-1]
				switch i {
				case 0:
					lost.samples += missing
				case 1:
					lost.histograms += missing
				case 2:
					lost.exemplars += missing
				}
			}
		}
	}
	return lost, "", 0
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

// StatusClientClosedRequest is the status logged for a push whose client
// closed the request before the ingesters answered: nginx's 499, which
// Cortex also uses for canceled requests.
const StatusClientClosedRequest = 499

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
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		// The client went away (its own timeout, or it stopped): no
		// timeout of this system expired, and nobody reads the answer.
		code = StatusClientClosedRequest
		msg += " before the client closed the request"
	case ctx.Err() != nil || f.timedOut.Load():
		msg += fmt.Sprintf(" within -distributor.remote-timeout (%s)", d.cfg.RemoteTimeout)
	}
	if n > 0 {
		msg += fmt.Sprintf(": %d failed: %s", n, failed)
	}
	return &PushError{Code: code, Msg: msg}
}
