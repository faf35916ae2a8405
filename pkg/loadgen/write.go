package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// WriteConfig describes a remote-write load.
type WriteConfig struct {
	URL             string
	Tenant          string
	Series          int
	LabelsPerSeries int
	ScrapeInterval  time.Duration // 0: closed loop, as fast as acknowledgements come back
	// Backfill writes this much history, one sample per series every
	// ScrapeInterval, as fast as it is acknowledged, and stops once the
	// timestamps reach the present: data with a realistic density to query.
	Backfill          time.Duration
	SeriesPerRequest  int
	Writers           int
	Duration          time.Duration
	Requests          int // stop after this many requests; 0: run for Duration
	ChurnPerMinute    int // series replaced by new ones per minute
	ProgressInterval  time.Duration
	MetricName        string
	AdditionalHeaders map[string]string
}

// series are the active series: label values fixed per series, plus a
// generation that churn bumps to replace a series by a new one.
type seriesSet struct {
	cfg  WriteConfig
	gens []atomic.Uint32
}

func (s *seriesSet) labels(i int) []prompb.Label {
	ls := make([]prompb.Label, 0, s.cfg.LabelsPerSeries)
	ls = append(ls, prompb.Label{Name: "__name__", Value: s.cfg.MetricName})
	for l := 1; l < s.cfg.LabelsPerSeries; l++ {
		var v string
		switch l {
		case 1:
			v = "series-" + strconv.Itoa(i) + "-" + strconv.Itoa(int(s.gens[i].Load()))
		default:
			// Low-cardinality labels, like job, instance, zone.
			v = "value-" + strconv.Itoa(i%(l*10))
		}
		ls = append(ls, prompb.Label{Name: "label_" + strconv.Itoa(l), Value: v})
	}
	return ls
}

// churn replaces n series: their next samples carry a new label value, so
// the receiver sees new series and the old ones go stale.
func (s *seriesSet) churn(from, n int) int {
	for k := 0; k < n; k++ {
		s.gens[(from+k)%len(s.gens)].Add(1)
	}
	return (from + n) % len(s.gens)
}

// RunWrite drives the load until the duration or request count is reached,
// or ctx ends, and returns the summary.
func RunWrite(ctx context.Context, cfg WriteConfig, client *http.Client, progress io.Writer) (*Summary, error) {
	if cfg.Series <= 0 || cfg.SeriesPerRequest <= 0 || cfg.Writers <= 0 || cfg.LabelsPerSeries < 1 {
		return nil, fmt.Errorf("-series, -series-per-request and -writers must be positive and -labels at least 1")
	}
	if cfg.Backfill > 0 && cfg.ScrapeInterval <= 0 {
		return nil, fmt.Errorf("-backfill needs -scrape-interval: the spacing of the written history")
	}
	if cfg.MetricName == "" {
		cfg.MetricName = "loadgen_metric"
	}
	set := &seriesSet{cfg: cfg, gens: make([]atomic.Uint32, cfg.Series)}
	batches := (cfg.Series + cfg.SeriesPerRequest - 1) / cfg.SeriesPerRequest
	stats := newRecorder()

	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	var sent atomic.Int64
	start := time.Now()
	stopProgress := stats.progress(progress, cfg.ProgressInterval, start)
	defer stopProgress()
	if cfg.ChurnPerMinute > 0 {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			next, carry := 0, 0.0
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					carry += float64(cfg.ChurnPerMinute) / 60
					n := int(carry)
					carry -= float64(n)
					next = set.churn(next, n)
				}
			}
		}()
	}

	var wg sync.WaitGroup
	for w := 0; w < cfg.Writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			// Each batch of series belongs to one writer, so a series'
			// samples are sent in order and timestamps only grow.
			var mine []int
			for b := w; b < batches; b += cfg.Writers {
				mine = append(mine, b)
			}
			if len(mine) == 0 {
				return
			}
			last := make([]int64, len(mine))
			var buf []byte
			for round := 0; ; round++ {
				var at int64 // the round's timestamp when backfilling
				if cfg.Backfill > 0 {
					at = start.Add(-cfg.Backfill + time.Duration(round)*cfg.ScrapeInterval).UnixMilli()
					if at > time.Now().UnixMilli() {
						return
					}
				} else if cfg.ScrapeInterval > 0 && !waitUntil(ctx, start.Add(time.Duration(round)*cfg.ScrapeInterval)) {
					return
				}
				for k, b := range mine {
					if ctx.Err() != nil || (cfg.Requests > 0 && sent.Add(1) > int64(cfg.Requests)) {
						return
					}
					ts := max(time.Now().UnixMilli(), last[k]+1)
					if at != 0 {
						ts = at
					}
					last[k] = ts
					req := buildRequest(set, b*cfg.SeriesPerRequest, min((b+1)*cfg.SeriesPerRequest, cfg.Series), ts)
					buf = pushOnce(ctx, client, cfg, req, buf, stats)
				}
			}
		}(w)
	}
	wg.Wait()
	return stats.summary(time.Since(start)), nil
}

func waitUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func buildRequest(set *seriesSet, from, to int, ts int64) *prompb.WriteRequest {
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, to-from)}
	for i := from; i < to; i++ {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  set.labels(i),
			Samples: []prompb.Sample{{Timestamp: ts, Value: float64(ts%100000) + float64(i)}},
		})
	}
	return req
}

// errorBodyLimit is how much of an error answer is read for its message.
const errorBodyLimit = 64 << 10

// pushOnce sends one request as Prometheus does and records the outcome.
func pushOnce(ctx context.Context, client *http.Client, cfg WriteConfig, req *prompb.WriteRequest, buf []byte, stats *recorder) []byte {
	raw, err := req.Marshal()
	if err != nil {
		stats.record(0, 0, "marshal")
		return buf
	}
	buf = snappy.Encode(buf[:cap(buf)], raw)
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(buf))
	if err != nil {
		stats.record(0, 0, "request")
		return buf
	}
	httpReq.Header.Set("Content-Encoding", "snappy")
	httpReq.Header.Set("Content-Type", "application/x-protobuf")
	httpReq.Header.Set("User-Agent", "cortex-loadgen")
	httpReq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	if cfg.Tenant != "" {
		httpReq.Header.Set("X-Scope-OrgID", cfg.Tenant)
	}
	for k, v := range cfg.AdditionalHeaders {
		httpReq.Header.Set(k, v)
	}
	began := time.Now()
	resp, err := client.Do(httpReq)
	if err != nil {
		if ctx.Err() == nil {
			stats.recordError(time.Since(began), "transport", err.Error())
		}
		return buf
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyLimit))
		stats.recordError(time.Since(began), strconv.Itoa(resp.StatusCode), firstLine(body))
		return buf
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	stats.record(time.Since(began), len(req.Timeseries), strconv.Itoa(resp.StatusCode))
	return buf
}
