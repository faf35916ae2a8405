package querier

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/prometheus/promql"
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
