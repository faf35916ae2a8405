package alertmanager

import (
	"fmt"
	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// apiLimiter bounds the GET requests of one tenant's API served at once,
// as Alertmanager's own API does (api.Options.Concurrency): one more is
// refused with 503 rather than queued. Other methods are not limited.
type apiLimiter struct {
	slots    chan struct{}
	inFlight prometheus.Gauge
	exceeded prometheus.Counter
}

// newAPILimiter allows concurrency GET requests at once; below 1, the
// larger of GOMAXPROCS and 8 (Alertmanager's default).
func newAPILimiter(concurrency int, reg prometheus.Registerer) *apiLimiter {
	if concurrency < 1 {
		concurrency = max(runtime.GOMAXPROCS(0), 8)
	}
	return &apiLimiter{
		slots: make(chan struct{}, concurrency),
		inFlight: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name:        "alertmanager_http_requests_in_flight",
			Help:        "Current number of HTTP requests being processed.",
			ConstLabels: prometheus.Labels{"method": "get"},
		}),
		exceeded: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name:        "alertmanager_http_concurrency_limit_exceeded_total",
			Help:        "Total number of times an HTTP request failed because the concurrency limit was reached.",
			ConstLabels: prometheus.Labels{"method": "get"},
		}),
	}
}

// serve runs f, or refuses a GET request when the tenant has as many in
// flight as allowed.
func (l *apiLimiter) serve(w http.ResponseWriter, r *http.Request, f func()) {
	if r.Method != http.MethodGet {
		f()
		return
	}
	select {
	case l.slots <- struct{}{}:
	default:
		l.exceeded.Inc()
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("Limit of concurrent GET requests reached (%d), try again later (-alertmanager.api-concurrency).", cap(l.slots)))
		return
	}
	l.inFlight.Inc()
	defer func() {
		l.inFlight.Dec()
		<-l.slots
	}()
	f()
}
