package tlsconfig

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts TLS reloads and handshakes for every server and client of a process.
type Metrics struct {
	reloads           *prometheus.CounterVec
	reloadFailures    *prometheus.CounterVec
	handshakeFailures *prometheus.CounterVec
	serverHandshakes  *prometheus.CounterVec
	clientHandshakes  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_tls_reloads_total",
			Help: "TLS certificates and CA bundles reloaded from disk after their files changed.",
		}, []string{"flag", "path"}),
		reloadFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_tls_reload_failures_total",
			Help: "Changed TLS files that could not be loaded; the last good material stays in use.",
		}, []string{"flag", "path"}),
		handshakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_tls_handshake_failures_total",
			Help: "TLS handshakes refused or failed on a server, by reason.",
		}, []string{"server", "reason"}),
		serverHandshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_tls_server_handshakes_total",
			Help: "Successful TLS handshakes on a server. Compare with request counts to see connection reuse.",
		}, []string{"server"}),
		clientHandshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_tls_client_handshakes_total",
			Help: "TLS handshakes made by a client, by its flag prefix. One per connection, not per request.",
		}, []string{"client", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.reloads, m.reloadFailures, m.handshakeFailures, m.serverHandshakes, m.clientHandshakes)
	}
	return m
}
