package querier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/promql"

	"github.com/cortex-tls/cortex/pkg/querier/tenantfederation"
)

// errorType is the errorType field of a Prometheus API error answer.
type errorType string

const (
	errorTimeout     errorType = "timeout"
	errorCanceled    errorType = "canceled"
	errorExec        errorType = "execution"
	errorBadData     errorType = "bad_data"
	errorInternal    errorType = "internal"
	errorUnavailable errorType = "unavailable"
	errorCostLimit   errorType = "cost_limit"
)

// statusClientClosedConnection is the nginx code Prometheus answers a
// canceled query with.
const statusClientClosedConnection = 499

type apiError struct {
	typ errorType
	err error
}

func (e *apiError) code() int {
	switch e.typ {
	case errorBadData:
		return http.StatusBadRequest
	case errorExec, errorCostLimit:
		return http.StatusUnprocessableEntity
	case errorCanceled:
		return statusClientClosedConnection
	case errorTimeout:
		return http.StatusServiceUnavailable
	case errorUnavailable:
		// Prometheus has no code of its own here (it answers 500); too
		// few ingesters is a condition a retry can cure, hence 503.
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// apiErrorFor classifies a query or storage error as Prometheus's
// returnAPIError does, adding the querier's own causes: ingesters
// unavailable and timeouts met while waiting for ingesters.
func apiErrorFor(err error) *apiError {
	var (
		canceled    promql.ErrQueryCanceled
		timeout     promql.ErrQueryTimeout
		tooMany     promql.ErrTooManySeries
		tooManyRead promql.ErrTooManySamplesRead
		storageErr  promql.ErrStorage
		unavailable *unavailableError
	)
	switch {
	case tenantfederation.IsRefused(err):
		return &apiError{errorBadData, err}
	case errors.As(err, &canceled):
		return &apiError{errorCanceled, err}
	case errors.As(err, &timeout):
		return &apiError{errorTimeout, err}
	case errors.As(err, &tooMany), errors.As(err, &tooManyRead):
		return &apiError{errorCostLimit, err}
	case errors.As(err, &storageErr):
		return &apiError{errorInternal, err}
	case errors.Is(err, context.Canceled):
		return &apiError{errorCanceled, err}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{errorTimeout, err}
	case errors.As(err, &unavailable):
		return &apiError{errorUnavailable, err}
	}
	return &apiError{errorExec, err}
}

func invalidParamError(err error, param string) apiResult {
	return apiResult{err: &apiError{errorBadData, fmt.Errorf("invalid parameter %q: %w", param, err)}}
}

// queryConstructionError classifies an error from building a query:
// waiting for a slot may time out; anything else is a bad query.
func queryConstructionError(err error) *apiError {
	var (
		timeout  promql.ErrQueryTimeout
		canceled promql.ErrQueryCanceled
	)
	if errors.As(err, &timeout) || errors.As(err, &canceled) {
		return apiErrorFor(err)
	}
	return &apiError{errorBadData, fmt.Errorf("invalid parameter %q: %w", "query", err)}
}

// ringError explains a ring that cannot give a quorum of healthy
// ingesters, naming the unhealthy ones.
func ringError(r ring.ReadRing, err error) error {
	if !errors.Is(err, ring.ErrTooManyUnhealthyInstances) {
		return fmt.Errorf("no ingesters to query: %w", err)
	}
	rf := r.ReplicationFactor()
	msg := fmt.Sprintf("too many unhealthy ingesters for the quorum (replication factor %d tolerates %d; an ingester is unhealthy when its last ring heartbeat is older than -ring.heartbeat-timeout or its state does not serve reads)", rf, rf/2)
	if names := unhealthyIngesters(r); names != "" {
		msg += ": unhealthy: " + names
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// unhealthyIngesters lists the ring's unhealthy instances as its status
// page reports them (dskit's ring has no other way to list them), or ""
// for a ring without one.
func unhealthyIngesters(r ring.ReadRing) string {
	h, ok := r.(http.Handler)
	if !ok {
		return ""
	}
	req, err := http.NewRequest(http.MethodGet, "/ring", nil)
	if err != nil {
		return ""
	}
	req.Header.Set("Accept", "application/json")
	w := &bufferWriter{header: http.Header{}}
	h.ServeHTTP(w, req)
	var page struct {
		Shards []struct {
			ID        string    `json:"id"`
			State     string    `json:"state"`
			Address   string    `json:"address"`
			Heartbeat time.Time `json:"timestamp"`
		} `json:"shards"`
		Now time.Time `json:"now"`
	}
	if err := json.Unmarshal(w.buf.Bytes(), &page); err != nil {
		return ""
	}
	var names []string
	for _, s := range page.Shards {
		if s.State == "UNHEALTHY" {
			names = append(names, fmt.Sprintf("%s at %s (last heartbeat %s ago)", s.ID, s.Address, page.Now.Sub(s.Heartbeat).Truncate(time.Second)))
		}
	}
	return strings.Join(names, ", ")
}

// bufferWriter is an http.ResponseWriter into memory.
type bufferWriter struct {
	header http.Header
	buf    bytes.Buffer
}

func (w *bufferWriter) Header() http.Header         { return w.header }
func (w *bufferWriter) Write(b []byte) (int, error) { return w.buf.Write(b) }
func (w *bufferWriter) WriteHeader(int)             {}
