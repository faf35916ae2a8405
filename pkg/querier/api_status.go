package querier

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// errorNotFound is Prometheus's errorType for a path its API does not serve.
const errorNotFound errorType = "not_found"

// notFound answers a path under <prefix>/api/v1/ that this API does not
// serve: status/config, status/flags, status/runtimeinfo, targets,
// targets/metadata, alertmanagers and any unknown path. Like Mimir,
// which serves none of these under its Prometheus prefix: a Cortex
// cluster has no scrape configuration, targets or notifier of its own, and
// Grafana's Prometheus data source calls none of them (it reads
// status/buildinfo, and uses format_query from its editor).
//
// Prometheus's own router answers such a path with a plain-text "404 page
// not found". Here the 404 carries Prometheus's JSON error envelope with
// errorType not_found, because both Grafana and Prometheus's Go API client
// (promtool) read the error field of a JSON error body and show it, where a
// plain-text body surfaces as an unparsable response.
//
// A path of known, served with another method, gets 405 with an Allow
// header, as from Prometheus's router.
func (q *Querier) notFound(known *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, pattern := known.Handler(r); pattern != "" {
			h.ServeHTTP(w, r)
			return
		}
		// status/tsdb is served: the tenant's head statistics, from the
		// ingesters (see tsdbstatus.go).
		if isTSDBStatusPath(r.URL.Path) {
			if r.Method != http.MethodGet {
				methodNotAllowed([]string{http.MethodGet}).ServeHTTP(w, r)
				return
			}
			q.wrap(routeName(r.URL.Path), q.tsdbStatus).ServeHTTP(w, r)
			return
		}
		b, err := json.Marshal(&response{
			Status:    "error",
			ErrorType: string(errorNotFound),
			Error:     fmt.Sprintf("%s is not served by the Prometheus API of this cluster", r.URL.Path),
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		if _, err := w.Write(b); err != nil {
			q.logger.Debug("error writing response", "err", err)
		}
	})
}

// methodNotAllowed answers 405, naming the methods in the Allow header.
func methodNotAllowed(methods []string) http.Handler {
	allow := strings.Join(methods, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", allow)
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
	})
}
