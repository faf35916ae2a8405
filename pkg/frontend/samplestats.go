package frontend

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
)

// The queriers answer a query asked with a stats parameter with
// Prometheus' statistics (data.stats); with -querier.per-step-stats-enabled
// and stats=all, with the queryable samples of each step too. The frontend
// joins those of a query's split parts and shards as Cortex's query-frontend
// does: the samples of each step summed over the shards (the parts hold
// different steps), the total their sum, the peak the largest part's peak;
// the engine's timings, which do not add up, are dropped. The results
// cache keeps them per step (-frontend.cache-queryable-samples-stats), so
// a cached answer reports what its steps cost when they were evaluated.

// partStats is data.stats of a querier's answer, as far as the frontend
// reads it.
type partStats struct {
	Samples *struct {
		TotalQueryableSamplesPerStep []stepSamples `json:"totalQueryableSamplesPerStep"`
		TotalQueryableSamples        int64         `json:"totalQueryableSamples"`
		PeakSamples                  int64         `json:"peakSamples"`
	} `json:"samples"`
}

// stepSamples is Prometheus' [<seconds>, <samples>] pair of one step.
type stepSamples struct {
	t int64 // milliseconds
	v int64
}

func (s *stepSamples) UnmarshalJSON(b []byte) error {
	var pair [2]json.Number
	if err := json.Unmarshal(b, &pair); err != nil {
		return fmt.Errorf("decoding a step's samples %.40q: %w", b, err)
	}
	t, err := parseTimeMs(pair[0].String())
	if err != nil {
		return fmt.Errorf("decoding a step's samples %.40q: %w", b, err)
	}
	v, err := pair[1].Int64()
	if err != nil {
		return fmt.Errorf("decoding a step's samples %.40q: %w", b, err)
	}
	s.t, s.v = t, v
	return nil
}

// sampleStats joins the samples statistics of several answers.
type sampleStats struct {
	perStep map[int64]int64
	// totals sums the totals of the answers without per-step statistics.
	totals int64
	peak   int64
}

// add joins the statistics of one answer, keeping only its steps within
// [start, end] when trim is set (an extent or fetch of which a sub-range is
// used): its peak is then the largest step's, as Cortex extracts it.
func (s *sampleStats) add(ps *partStats, start, end int64, trim bool) {
	if ps == nil || ps.Samples == nil {
		return
	}
	if len(ps.Samples.TotalQueryableSamplesPerStep) == 0 {
		s.totals += ps.Samples.TotalQueryableSamples
		s.peak = max(s.peak, ps.Samples.PeakSamples)
		return
	}
	if s.perStep == nil {
		s.perStep = map[int64]int64{}
	}
	for _, st := range ps.Samples.TotalQueryableSamplesPerStep {
		if trim && (st.t < start || st.t > end) {
			continue
		}
		s.perStep[st.t] += st.v
		if trim {
			s.peak = max(s.peak, st.v)
		}
	}
	if !trim {
		s.peak = max(s.peak, ps.Samples.PeakSamples)
	}
}

// appendJSON writes the joined statistics, of the steps at or before
// until, as Cortex's query-frontend answers them.
func (s *sampleStats) appendJSON(b []byte, until int64) []byte {
	steps := slices.Sorted(maps.Keys(s.perStep))
	total := s.totals
	for _, t := range steps {
		if t <= until {
			total += s.perStep[t]
		}
	}
	b = append(b, `,"stats":{"samples":{"totalQueryableSamples":`...)
	b = strconv.AppendInt(b, total, 10)
	first := true
	for _, t := range steps {
		if t > until {
			break
		}
		if first {
			b = append(b, `,"totalQueryableSamplesPerStep":[`...)
		} else {
			b = append(b, ',')
		}
		first = false
		b = append(b, '[')
		b = strconv.AppendFloat(b, float64(t)/1000, 'f', -1, 64)
		b = append(b, ',')
		b = strconv.AppendInt(b, s.perStep[t], 10)
		b = append(b, ']')
	}
	if !first {
		b = append(b, ']')
	}
	b = append(b, `,"peakSamples":`...)
	b = strconv.AppendInt(b, s.peak, 10)
	return append(b, "}}"...)
}

// allSteps is appendJSON's until for every step.
const allSteps = math.MaxInt64

// WithPerStepStats tells the frontend the queriers'
// -querier.per-step-stats-enabled, which -frontend.cache-queryable-samples-stats
// needs.
func WithPerStepStats(enabled bool) Option { return func(f *Frontend) { f.perStepStats = enabled } }

// rangeStatsParam sets the stats parameter of a range query's parts, as
// Cortex's results cache does: with the results cache, every part asks
// for per-step statistics (-frontend.cache-queryable-samples-stats) or
// for none, so that the cached answers serve any client's query.
func (f *Frontend) rangeStatsParam(params url.Values) {
	if f.cache == nil {
		return
	}
	params.Del("stats")
	if f.cfg.CacheQueryableSamplesStats {
		params.Set("stats", "all")
	}
}

// answerStats gives a range query's answer the statistics the client asked
// for (clientStats, its stats parameter): the parts' samples statistics
// joined, without the engine's timings; none when it asked for none, or
// when the results cache keeps none.
func (f *Frontend) answerStats(resp *frontendpb.HTTPResponse, clientStats string) (*frontendpb.HTTPResponse, error) {
	// The parts carry statistics when asked for them (rangeStatsParam).
	partsStats := clientStats != ""
	if f.cache != nil {
		partsStats = f.cfg.CacheQueryableSamplesStats
	}
	if !partsStats || resp == nil || resp.Code != http.StatusOK {
		return resp, nil
	}
	m, err := decodeMatrices([]trimmedBody{{body: resp.Body}})
	if err != nil {
		return nil, err
	}
	if clientStats == "" {
		m.stats = nil
	}
	body, err := m.encode(allSteps)
	if err != nil {
		return nil, err
	}
	return &frontendpb.HTTPResponse{Code: http.StatusOK, Body: body, Headers: jsonHeaders}, nil
}
