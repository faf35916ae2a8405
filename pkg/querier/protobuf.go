package querier

import (
	"net/http"
	"strconv"

	"github.com/prometheus/prometheus/util/annotations"

	"github.com/cortex-tls/cortex/pkg/querier/codec"
)

// respondNegotiated writes a successful answer in the encoding the asker's
// Accept header picks: the answers of /query and /query_range in Cortex's
// protobuf encoding when asked for it (the query-frontend with
// -api.querier-default-codec=protobuf, the ruler through it), everything
// else in Prometheus' JSON.
func (q *Querier) respondNegotiated(w http.ResponseWriter, r *http.Request, data any, warnings annotations.Annotations) int {
	query := r.FormValue("query")
	d, ok := data.(queryData)
	contentType := codec.Negotiate(r.Header.Get("Accept"))
	if !ok || contentType == codec.MIMEJSON {
		cw := &countingWriter{ResponseWriter: w}
		code := q.respond(cw, data, warnings, query)
		if code == http.StatusOK {
			q.observeSize(codec.MIMEJSON, cw.n)
		}
		return code
	}
	warn, info := warnings.AsStrings(query, 10, 10)
	b, err := codec.AppendProtobuf(nil, codec.Answer{Value: d.v, Stats: d.stats, DataJSON: d.appendJSON, Warnings: warn, Infos: info}, contentType)
	if err != nil {
		q.logger.Error("error encoding a protobuf response", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return http.StatusInternalServerError
	}
	q.observeSize(contentType, len(b))
	w.Header().Set("Content-Type", contentType)
	// The answer's size before any compression, as Cortex's query API
	// tells it.
	w.Header().Set("X-Uncompressed-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(b); err != nil {
		q.logger.Debug("error writing response", "err", err)
	}
	return http.StatusOK
}

// observeSize counts an answer's encoded size, before compression, in
// cortex_querier_codec_response_size.
func (q *Querier) observeSize(contentType string, n int) {
	if q.metrics != nil {
		q.metrics.responseSize.WithLabelValues(contentType).Observe(float64(n))
	}
}

// countingWriter counts the bytes of an answer.
type countingWriter struct {
	http.ResponseWriter
	n int
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += n
	return n, err
}

// Unwrap gives http.ResponseController the underlying writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
