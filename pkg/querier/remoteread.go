package querier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
)

// Prometheus remote read (POST <prefix>/api/v1/read), answered as
// Prometheus's storage/remote read handler does, with its encoders: the
// SAMPLES response type (one snappy-compressed ReadResponse) and
// STREAMED_XOR_CHUNKS (ChunkedReadResponse frames, each with its length and
// CRC32, flushed as they are written). The series are the tenant's, read
// through the same queryable as PromQL, so the per-tenant limits apply
// (max_query_lookback, max_query_length, max_series_per_query,
// max_fetched_series_per_query, max_fetched_chunk_bytes_per_query,
// max_fetched_data_bytes_per_query, max_fetched_samples_per_query), each
// request takes one of the -querier.max-concurrent query slots and runs
// within -querier.timeout, and -querier.max-samples bounds the samples of
// the whole answer, in either response type.

const (
	// RemoteReadMaxBodySize bounds a remote read request's body, snappy
	// compressed and decoded: bigger ones are refused with 413. A request
	// is a list of matcher sets; Prometheus's own sends a few hundred
	// bytes. Not a flag: Cortex has none either (its bound is a 1 MiB
	// constant); this one is larger so that a request Cortex accepts is
	// never refused here.
	RemoteReadMaxBodySize = 4 << 20
	// remoteReadMaxBytesInFrame is the size a STREAMED_XOR_CHUNKS frame
	// grows to before it is sent, Prometheus's
	// --storage.remote.read-max-bytes-in-frame default. Not a flag: Cortex
	// has none, and the frame size bounds only the memory of one frame,
	// not what a request may read (the limits above do).
	remoteReadMaxBytesInFrame = 1 << 20
)

// RemoteReadHandler answers remote read for the tenant in the request
// context.
func (q *Querier) RemoteReadHandler() http.Handler {
	pool := &sync.Pool{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		q.extendWriteDeadline(w, start)
		code := q.remoteRead(w, r, pool)
		q.metrics.requestDuration.WithLabelValues(r.Method, routeName(r.URL.Path), strconv.Itoa(code), "false").Observe(time.Since(start).Seconds())
	})
}

func (q *Querier) remoteRead(w http.ResponseWriter, r *http.Request, pool *sync.Pool) int {
	req, code, err := decodeReadRequest(r)
	if err != nil {
		http.Error(w, err.Error(), code)
		return code
	}
	ctx, cancel := context.WithTimeout(r.Context(), q.cfg.Timeout)
	defer cancel()
	slot, err := q.slots.Insert(ctx, remoteReadDescription(req))
	if err != nil {
		return remoteReadError(w, err)
	}
	defer q.slots.Delete(slot)

	responseType, err := remote.NegotiateResponseType(req.AcceptedResponseTypes)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return http.StatusBadRequest
	}
	if responseType == prompb.ReadRequest_STREAMED_XOR_CHUNKS {
		return q.remoteReadChunks(ctx, w, req, pool)
	}
	return q.remoteReadSamples(ctx, w, req)
}

// decodeReadRequest reads a snappy-compressed ReadRequest of at most
// RemoteReadMaxBodySize bytes.
func decodeReadRequest(r *http.Request) (*prompb.ReadRequest, int, error) {
	if r.ContentLength > RemoteReadMaxBodySize {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("remote read request body of %d bytes is over the limit of %d bytes", r.ContentLength, RemoteReadMaxBodySize)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, RemoteReadMaxBodySize+1))
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("reading the remote read request body: %w", err)
	}
	if len(body) > RemoteReadMaxBodySize {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("remote read request body is over the limit of %d bytes", RemoteReadMaxBodySize)
	}
	// remote.DecodeReadRequest checks the snappy block's decoded length
	// before it allocates.
	r.Body = io.NopCloser(bytes.NewReader(body))
	req, err := remote.DecodeReadRequest(r)
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("decoding the remote read request: %w", err)
	}
	return req, 0, nil
}

// remoteReadDescription names a remote read in the active query log: its
// queries' selectors and time ranges (ms).
func remoteReadDescription(req *prompb.ReadRequest) string {
	var b strings.Builder
	b.WriteString("remote read:")
	for _, rq := range req.Queries {
		b.WriteString(" {")
		for i, m := range rq.Matchers {
			if i > 0 {
				b.WriteByte(',')
			}
			op := map[prompb.LabelMatcher_Type]string{prompb.LabelMatcher_EQ: "=", prompb.LabelMatcher_NEQ: "!=", prompb.LabelMatcher_RE: "=~", prompb.LabelMatcher_NRE: "!~"}[m.Type]
			b.WriteString(m.Name + op + strconv.Quote(m.Value))
		}
		fmt.Fprintf(&b, "}[%d,%d]", rq.StartTimestampMs, rq.EndTimestampMs)
	}
	return b.String()
}

func (q *Querier) remoteReadSamples(ctx context.Context, w http.ResponseWriter, req *prompb.ReadRequest) int {
	resp := prompb.ReadResponse{Results: make([]*prompb.QueryResult, len(req.Queries))}
	// -querier.max-samples bounds the whole answer, not each query's.
	samples := 0
	for i, query := range req.Queries {
		ss, closer, err := q.remoteReadSelect(ctx, query)
		if err != nil {
			return remoteReadError(w, err)
		}
		limit := 0
		if q.cfg.MaxSamples > 0 {
			limit = max(q.cfg.MaxSamples-samples, 1)
		}
		resp.Results[i], _, err = remote.ToQueryResult(ss, limit)
		closer()
		err = asSampleLimitError(err, q.cfg.MaxSamples)
		if err == nil {
			for _, ts := range resp.Results[i].Timeseries {
				samples += len(ts.Samples) + len(ts.Histograms)
			}
			if q.cfg.MaxSamples > 0 && samples > q.cfg.MaxSamples {
				err = remoteReadSampleLimitError(q.cfg.MaxSamples)
			}
		}
		if err != nil {
			return remoteReadError(w, err)
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Header().Set("Content-Encoding", "snappy")
	if err := remote.EncodeReadResponse(&resp, w); err != nil {
		q.logger.Warn("writing a remote read response", "err", err)
	}
	return http.StatusOK
}

func (q *Querier) remoteReadChunks(ctx context.Context, w http.ResponseWriter, req *prompb.ReadRequest, pool *sync.Pool) int {
	f, ok := w.(http.Flusher)
	if !ok {
		// The querier worker's writer keeps the whole answer for the
		// query-frontend: there is nothing to flush early.
		f = noFlush{}
	}
	sw := &startedWriter{Writer: w}
	cw := remote.NewChunkedWriter(sw, f)
	w.Header().Set("Content-Type", "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse")
	limit := &chunkSampleLimit{max: q.cfg.MaxSamples}
	for i, query := range req.Queries {
		ss, closer, err := q.remoteReadSelect(ctx, query)
		if err == nil {
			cs := storage.NewSeriesSetToChunkSet(ss)
			if limit.max > 0 {
				cs = &limitedChunkSeriesSet{ChunkSeriesSet: cs, limit: limit}
			}
			_, err = remote.StreamChunkedReadResponses(cw, int64(i), cs, nil, remoteReadMaxBytesInFrame, pool)
			closer()
		}
		if err != nil {
			if sw.started {
				// A normal return would make the cut stream look
				// complete: abort the response, as Prometheus does.
				q.logger.Error("streaming a remote read response", "err", err, "query_index", i)
				panic(http.ErrAbortHandler)
			}
			return remoteReadError(w, err)
		}
	}
	return http.StatusOK
}

// remoteReadSelect selects one query's series, sorted (the streamed
// response needs them so, and the samples response gives them so too).
func (q *Querier) remoteReadSelect(ctx context.Context, query *prompb.Query) (storage.SeriesSet, func(), error) {
	matchers, err := remote.FromLabelMatchers(query.Matchers)
	if err != nil {
		return nil, nil, badReadRequest{err}
	}
	querier, err := q.readable.Querier(query.StartTimestampMs, query.EndTimestampMs)
	if err != nil {
		return nil, nil, err
	}
	hints := &storage.SelectHints{Start: query.StartTimestampMs, End: query.EndTimestampMs}
	if h := query.Hints; h != nil {
		hints = &storage.SelectHints{Start: h.StartMs, End: h.EndMs, Step: h.StepMs, Func: h.Func, Grouping: h.Grouping, Range: h.RangeMs, By: h.By}
	}
	return querier.Select(ctx, true, hints, matchers...), func() { _ = querier.Close() }, nil
}

// badReadRequest is a request whose matchers do not compile.
type badReadRequest struct{ err error }

func (e badReadRequest) Error() string {
	return "invalid matcher in remote read request: " + e.err.Error()
}

// remoteReadError answers err in plain text, with the status code the
// Prometheus API would give it: 422 for a query limit, 503 for ingesters
// unavailable or a timeout, 499 for a canceled request, and 400 over
// -querier.max-samples, as Prometheus answers a read over its sample
// limit.
func remoteReadError(w http.ResponseWriter, err error) int {
	var code int
	var bad badReadRequest
	var samples *sampleLimitError
	if httpErr, ok := errors.AsType[remote.HTTPError](err); ok {
		code = httpErr.Status()
	} else if errors.As(err, &samples) || errors.As(err, &bad) {
		code = http.StatusBadRequest
	} else {
		code = apiErrorFor(err).code()
	}
	http.Error(w, err.Error(), code)
	return code
}

type noFlush struct{}

func (noFlush) Flush() {}

// startedWriter tells whether any of the response has been written.
type startedWriter struct {
	io.Writer
	started bool
}

func (w *startedWriter) Write(p []byte) (int, error) {
	w.started = true
	return w.Writer.Write(p)
}

// withRemoteRead serves remote read at <prefix>/api/v1/read under each
// prefix, and everything else with api. Remote read answers are snappy
// compressed already: they bypass the API's gzip.
func (q *Querier) withRemoteRead(prefixes []string, api http.Handler) http.Handler {
	mux := http.NewServeMux()
	read := q.RemoteReadHandler()
	for _, prefix := range prefixes {
		mux.Handle(http.MethodPost+" "+prefix+"/api/v1/read", read)
	}
	mux.Handle("/", api)
	return mux
}
