// Package loadgen is `cortex loadgen`: a load tool that speaks plain
// Prometheus remote write (to drive this system or any other receiver) and
// the Prometheus query API, and reports throughput, latency percentiles and
// errors by status code.
//
// It is a client only: it must not import the server-side component
// packages, so that it drives any remote-write receiver the same way.
package loadgen
