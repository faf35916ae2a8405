package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Summary is what a run measured; -json prints it as is.
type Summary struct {
	DurationSeconds   float64        `json:"duration_seconds"`
	Requests          int            `json:"requests"`
	SucceededRequests int            `json:"succeeded_requests"`
	Samples           int64          `json:"acknowledged_samples,omitempty"`
	SamplesPerSecond  float64        `json:"acknowledged_samples_per_second,omitempty"`
	RequestsPerSecond float64        `json:"requests_per_second"`
	LatencyP50Ms      float64        `json:"latency_p50_ms"`
	LatencyP90Ms      float64        `json:"latency_p90_ms"`
	LatencyP99Ms      float64        `json:"latency_p99_ms"`
	LatencyMaxMs      float64        `json:"latency_max_ms"`
	Errors            map[string]int `json:"errors"` // by HTTP status code, or "transport"
	// ErrorMessages holds, per key of Errors, what the first such failure
	// said: the first line of the server's answer, or the transport error.
	ErrorMessages map[string]string `json:"error_messages,omitempty"`
}

// String renders the summary for people.
func (s *Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "duration %.1fs, %d requests (%d ok, %.1f/s)\n", s.DurationSeconds, s.Requests, s.SucceededRequests, s.RequestsPerSecond)
	if s.Samples > 0 {
		fmt.Fprintf(&b, "acknowledged samples: %d (%.0f/s)\n", s.Samples, s.SamplesPerSecond)
	}
	fmt.Fprintf(&b, "latency: p50 %.2fms, p90 %.2fms, p99 %.2fms, max %.2fms\n", s.LatencyP50Ms, s.LatencyP90Ms, s.LatencyP99Ms, s.LatencyMaxMs)
	fmt.Fprintf(&b, "errors: %s\n", formatErrors(s.Errors))
	for _, k := range slices.Sorted(maps.Keys(s.ErrorMessages)) {
		fmt.Fprintf(&b, "  first %s: %s\n", k, s.ErrorMessages[k])
	}
	return b.String()
}

func formatErrors(errs map[string]int) string {
	if len(errs) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(errs)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, errs[k]))
	}
	return strings.Join(parts, " ")
}

// recorder collects outcomes from many goroutines.
type recorder struct {
	mu        sync.Mutex
	latencies []time.Duration
	ok        int
	samples   int64
	errors    map[string]int
	// messages is the first message seen per error status.
	messages map[string]string
}

func newRecorder() *recorder {
	return &recorder{errors: map[string]int{}, messages: map[string]string{}}
}

// maxMessageLen bounds a recorded error message: enough for any error
// Cortex or Prometheus answers with, short enough for one report line.
const maxMessageLen = 300

// firstLine is the first non-empty line of an answer, trimmed and
// shortened to maxMessageLen.
func firstLine(body []byte) string {
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if len(line) > maxMessageLen {
			line = strings.ToValidUTF8(line[:maxMessageLen], "") + "..."
		}
		return line
	}
	return "(empty body)"
}

// recordError notes a failed request like record, and msg as the status'
// message unless an earlier failure with that status gave one.
func (r *recorder) recordError(latency time.Duration, status, msg string) {
	r.record(latency, 0, status)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.messages[status]; !ok {
		r.messages[status] = msg
	}
}

// record notes one request: its latency, the samples acknowledged, and its
// status (an HTTP code, or a word for a request that got no answer).
func (r *recorder) record(latency time.Duration, samples int, status string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if latency > 0 {
		r.latencies = append(r.latencies, latency)
	}
	if strings.HasPrefix(status, "2") {
		r.ok++
		r.samples += int64(samples)
		return
	}
	r.errors[status]++
}

func (r *recorder) summary(elapsed time.Duration) *Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	lat := slices.Clone(r.latencies)
	slices.Sort(lat)
	requests := r.ok
	for _, n := range r.errors {
		requests += n
	}
	secs := elapsed.Seconds()
	return &Summary{
		DurationSeconds:   secs,
		Requests:          requests,
		SucceededRequests: r.ok,
		Samples:           r.samples,
		SamplesPerSecond:  float64(r.samples) / secs,
		RequestsPerSecond: float64(requests) / secs,
		LatencyP50Ms:      percentile(lat, 0.50),
		LatencyP90Ms:      percentile(lat, 0.90),
		LatencyP99Ms:      percentile(lat, 0.99),
		LatencyMaxMs:      percentile(lat, 1),
		Errors:            maps.Clone(r.errors),
		ErrorMessages:     maps.Clone(r.messages),
	}
}

// percentile of sorted latencies, in milliseconds (nearest rank).
func percentile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / float64(time.Millisecond)
}

// progress prints a line every interval until the returned func is called.
func (r *recorder) progress(w io.Writer, every time.Duration, start time.Time) func() {
	if w == nil || every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s := r.summary(time.Since(start))
				fmt.Fprintf(w, "%5.0fs: %d requests, %.0f samples/s acked, p50 %.1fms p99 %.1fms, errors: %s\n",
					s.DurationSeconds, s.Requests, s.SamplesPerSecond, s.LatencyP50Ms, s.LatencyP99Ms, formatErrors(s.Errors))
			}
		}
	}()
	return func() { close(done) }
}
