package distributor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/remotewrite"
)

// Remote-write protocol names, as Prometheus's sender and receiver use them.
const (
	contentTypeProtobuf = "application/x-protobuf"
	protoV1             = "prometheus.WriteRequest"
	protoV2             = "io.prometheus.write.v2.Request"

	headerSamplesWritten    = "X-Prometheus-Remote-Write-Samples-Written"
	headerHistogramsWritten = "X-Prometheus-Remote-Write-Histograms-Written"
	headerExemplarsWritten  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

// maxPooledBytes bounds the buffers kept for reuse, so that one huge
// request does not pin its memory for good.
const maxPooledBytes = 16 << 20

// pushRequest is a remote-write request being served: its bytes, and the
// decoded request whose strings point into them.
type pushRequest struct {
	prompb.WriteRequest
	body   bytes.Buffer // as received: snappy-compressed
	raw    []byte       // decompressed; its capacity is reused
	spans  [][2]int32   // each series' bytes in raw (1.0)
	v2     remotewrite.V2Decoder
	issues remotewrite.SeriesIssues
}

func (d *Distributor) getRequest() *pushRequest {
	if pr, ok := d.requests.Get().(*pushRequest); ok {
		return pr
	}
	return &pushRequest{}
}

func (d *Distributor) putRequest(pr *pushRequest) {
	// Big buffers are dropped along with the series that point into them.
	if pr.body.Cap() > maxPooledBytes || cap(pr.raw) > maxPooledBytes {
		return
	}
	pr.issues = remotewrite.SeriesIssues{}
	d.requests.Put(pr)
}

// PushHandler serves POST /api/v1/push (and Cortex's older /api/prom/push):
// Prometheus remote write 1.0 and 2.0, chosen by Content-Type. The tenant
// must already be in the request context (tenant.HTTPMiddleware).
//
// Answers, as Prometheus's receiver gives them: 204 No Content when
// everything was written; 400 naming the first refused series and why
// when some of the request was refused (everything else is written; only
// a body that does not decode is refused as a whole); 413 for a body over
// -distributor.max-recv-msg-size; 415 for an unsupported Content-Type or
// Content-Encoding, or a 2.0 request with -distributor.remote-writev2-enabled
// false; 429 with Retry-After over the tenant's ingestion rate (nothing
// written); 5xx when the ingesters did not acknowledge the write, which
// the sender should retry. Every answer to a 2.0 request carries the
// X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written
// headers: what a quorum of ingesters stored.
func (d *Distributor) PushHandler() http.Handler {
	return http.HandlerFunc(d.servePush)
}

func (d *Distributor) servePush(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "remote write needs POST", http.StatusMethodNotAllowed)
		return
	}
	v2, err := parseContentType(r.Header.Get("Content-Type"))
	if err != nil {
		if !d.cfg.AcceptUnknownRemoteWriteContentType {
			http.Error(w, err.Error()+" (-distributor.accept-unknown-remote-write-content-type reads such requests as 1.0)", http.StatusUnsupportedMediaType)
			return
		}
		v2 = false
	}
	if v2 {
		// From here on, every answer says what was written, if only 0.
		setWritten(w, writeStats{})
		if !d.cfg.RemoteWriteV2Enabled {
			http.Error(w, fmt.Sprintf("%s protobuf message is not accepted by this server (-distributor.remote-writev2-enabled is false); only accepts %s", protoV2, protoV1), http.StatusUnsupportedMediaType)
			return
		}
	}
	// Prometheus's own receiver takes a missing Content-Encoding as snappy.
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "snappy") {
		http.Error(w, fmt.Sprintf("unsupported Content-Encoding %q: remote write bodies must be snappy-compressed", enc), http.StatusUnsupportedMediaType)
		return
	}
	userID, err := tenant.ID(r.Context())
	if err != nil {
		http.Error(w, "no tenant: "+err.Error(), http.StatusUnauthorized)
		return
	}

	pr := d.getRequest()
	raw, err := d.readBody(r, pr)
	if err == nil {
		if v2 {
			pr.v2.TypeAndUnitLabels = d.limits.For(userID).EnableTypeAndUnitLabels
			err = pr.v2.Decode(raw, &pr.WriteRequest, &pr.issues)
		} else {
			err = remotewrite.DecodeV1(raw, &pr.WriteRequest, &pr.spans)
		}
		if err != nil {
			version := "1.0"
			if v2 {
				version = "2.0"
			}
			err = &PushError{Code: http.StatusBadRequest, Msg: fmt.Sprintf("decoding remote write %s request: %v", version, err)}
		}
	}
	if err != nil {
		d.putRequest(pr)
		d.writeError(w, userID, err)
		return
	}

	src := &source{release: func() { d.putRequest(pr) }}
	if v2 {
		src.issues = &pr.issues
	} else {
		src.raw, src.spans = raw, pr.spans
	}
	stats, err := d.push(r.Context(), userID, &pr.WriteRequest, src)
	if v2 {
		setWritten(w, stats)
	}
	if err != nil {
		d.writeError(w, userID, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// parseContentType tells remote write 2.0 from 1.0 as Prometheus's
// receiver does: no Content-Type, or no proto parameter, means 1.0.
func parseContentType(ct string) (v2 bool, err error) {
	if ct == "" {
		return false, nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return false, fmt.Errorf("unsupported Content-Type %q: %v", ct, err)
	}
	if mt != contentTypeProtobuf {
		return false, fmt.Errorf("unsupported Content-Type %q: remote write 1.0 sends %s, 2.0 sends %s;proto=%s", ct, contentTypeProtobuf, contentTypeProtobuf, protoV2)
	}
	switch params["proto"] {
	case "", protoV1:
		return false, nil
	case protoV2:
		return true, nil
	}
	return false, fmt.Errorf("unsupported Content-Type %q: proto must be %s (remote write 1.0) or %s (2.0)", ct, protoV1, protoV2)
}

// readBody reads and decompresses the body into pr's buffers.
func (d *Distributor) readBody(r *http.Request, pr *pushRequest) ([]byte, error) {
	limit := d.cfg.MaxRecvMsgSize
	tooLarge := func(what string, n int64) error {
		size := ""
		if n > 0 {
			size = fmt.Sprintf(" (%d bytes)", n)
		}
		return &PushError{Code: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("%s%s is larger than -distributor.max-recv-msg-size (%d bytes)", what, size, limit)}
	}
	if r.ContentLength > int64(limit) {
		return nil, tooLarge("request body", r.ContentLength)
	}
	pr.body.Reset()
	if r.ContentLength > 0 {
		pr.body.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := pr.body.ReadFrom(io.LimitReader(r.Body, int64(limit)+1)); err != nil {
		return nil, &PushError{Code: http.StatusBadRequest, Msg: "reading request body: " + err.Error()}
	}
	if pr.body.Len() > limit {
		return nil, tooLarge("request body", 0)
	}
	compressed := pr.body.Bytes()
	n, err := snappy.DecodedLen(compressed)
	if err != nil {
		return nil, &PushError{Code: http.StatusBadRequest, Msg: "decompressing snappy request body: " + err.Error()}
	}
	if n > limit {
		return nil, tooLarge("decompressed request body", int64(n))
	}
	if cap(pr.raw) < n {
		pr.raw = make([]byte, n)
	}
	raw, err := snappy.Decode(pr.raw[:cap(pr.raw)], compressed)
	if err != nil {
		return nil, &PushError{Code: http.StatusBadRequest, Msg: "decompressing snappy request body: " + err.Error()}
	}
	return raw, nil
}

func setWritten(w http.ResponseWriter, s writeStats) {
	h := w.Header()
	h.Set(headerSamplesWritten, strconv.Itoa(s.samples))
	h.Set(headerHistogramsWritten, strconv.Itoa(s.histograms))
	h.Set(headerExemplarsWritten, strconv.Itoa(s.exemplars))
}

// writeError answers a failed push. Refused data is the sender's problem
// and logged at debug level only; failures to write are ours.
func (d *Distributor) writeError(w http.ResponseWriter, userID string, err error) {
	var pe *PushError
	if !errors.As(err, &pe) {
		pe = &PushError{Code: http.StatusInternalServerError, Msg: err.Error()}
	}
	if pe.Code == http.StatusAccepted {
		// A replica that is not elected: its samples are dropped on purpose.
		w.WriteHeader(pe.Code)
		return
	}
	if pe.Code == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(pe.RetryAfter.Seconds())))))
	}
	if pe.Code >= 500 {
		d.logger.Warn("push failed", "tenant", userID, "status", pe.Code, "err", pe.Msg)
	} else {
		d.logger.Debug("push refused", "tenant", userID, "status", pe.Code, "err", pe.Msg)
	}
	http.Error(w, pe.Msg, pe.Code)
}
