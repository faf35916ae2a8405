package ingester

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/remotewrite"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// Push appends a write request to the tenant's TSDB.
//
// Series labels are checked as the distributor checks them
// (validation.ValidateLabels), since a client may call Push directly.
// Every valid sample is stored even when others are refused (invalid
// labels, out of order, too old, duplicate timestamp, series limits), as
// the distributor keeps the valid series of a request: the refusals come
// back as one InvalidArgument error naming the first refused series and
// the reason, with a count of the rest, and with a client.PushResponse in
// its details saying what each series lost, from which the distributor
// counts what a quorum stored. Unavailable and Internal are kept for what a
// retry can fix (an ingester not running, a failing disk).
//
// A sample's start (created) timestamp, which remote write 2.0 carries
// and the distributor forwards in the sample's unknown fields, is stored
// as Prometheus stores it: a zero sample at that time, ahead of the
// series' first sample after a reset (best effort: a start timestamp not
// older than the series' newest sample is ignored).
//
// Durability: the TSDB appender's Commit writes the request's series and
// samples to the WAL segment file with write(2) before Push returns, so a
// process crash (kill -9) loses no acknowledged sample. The WAL is fsynced
// when a segment is completed and on close, as in Prometheus and Cortex, so
// an OS crash or power loss can lose the last moments before it.
//
// The request's label strings point into its buffer, which the gRPC
// server reuses for another request once Push has returned: nothing of the
// request may outlive the call without being copied. Series labels are
// encoded into a scratch buffer (stringlabels' ScratchBuilder.Overwrite)
// and copied once more for a new series, as the TSDB head keeps the labels
// it is given; exemplar labels are built into new memory (ToExemplar), and
// the metadata store clones what it keeps (exemplars, native histograms
// and metadata are decoded by gogo's code anyway, which copies); error
// messages are formatted into new strings.
func (i *Ingester) Push(ctx context.Context, req *client.PushRequest) (*client.PushResponse, error) {
	id, err := tenant.ID(ctx)
	if err != nil {
		return nil, tenant.GRPCError(err)
	}
	if s := i.State(); s != services.Running {
		return nil, notRunning(s)
	}
	if i.cfg.VerifySignatures {
		if err := client.VerifySignature(ctx, id, &req.WriteRequest); err != nil {
			return nil, err
		}
	}
	done, err := i.instance.admitPush()
	if err != nil {
		return nil, err
	}
	defer done()
	i.closeMu.RLock()
	defer i.closeMu.RUnlock()
	if i.closed {
		return nil, notRunning(services.Terminated)
	}
	u, err := i.getOrCreateTSDB(id)
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, err // an instance limit
		}
		i.logger.Error("opening TSDB", "user", id, "err", err)
		return nil, status.Error(codes.Internal, err.Error())
	}
	now := time.Now()
	if len(req.Metadata) > 0 {
		i.addMetadata(u, id, req.Metadata, now)
	}
	if len(req.Timeseries) == 0 {
		return &client.PushResponse{}, nil
	}

	u.appendMu.RLock()
	defer u.appendMu.RUnlock()
	u.lastPush.Store(now.UnixNano())

	var nExemplars int
	for ti := range req.Timeseries {
		nExemplars += len(req.Timeseries[ti].Exemplars)
	}
	if err := u.reserveExemplars(nExemplars); err != nil {
		return nil, status.Errorf(codes.Internal, "growing the exemplar buffer of tenant %q: %v", id, err)
	}
	p := pushState{u: u, oooWindow: time.Duration(u.oooWindow.Load()) * time.Millisecond}
	limits := u.limits()
	app := u.db.AppenderV2(ctx)
	exApp, _ := app.(storage.ExemplarAppenderV2)
	getRef, _ := app.(storage.GetRef)
	var (
		sb, eb  labels.ScratchBuilder
		scratch labels.Labels
		exs     []exemplar.Exemplar
	)
	for ti := range req.Timeseries {
		ts := &req.Timeseries[ti]
		p.series = ti
		samplesBefore := p.samples
		// Most series exist already: look them up with labels built in a
		// reused buffer, and allocate labels only for a new series, whose
		// labels the TSDB keeps.
		buildLabels(&sb, ts.Labels, &scratch)
		var (
			ref storage.SeriesRef
			ls  labels.Labels
		)
		if getRef != nil {
			ref, ls = getRef.GetRef(scratch, scratch.Hash())
		}
		if ref == 0 {
			// Only a new series is checked, which keeps the checks off
			// the common path: the TSDB's series were checked when
			// created (those stored before the checks existed are read
			// around, see validUTF8).
			var modified bool
			ts.Labels, modified = validation.NormalizeLabels(ts.Labels)
			if r, msg := validation.ValidateLabels(limits, ts.Labels); r != validation.LabelsValid {
				p.invalidSeries(r, msg, ts)
				continue
			}
			if modified {
				buildLabels(&sb, ts.Labels, &scratch)
			}
			ls = scratch.Copy()
		}
		refused := false
		for si := range ts.Samples {
			s := &ts.Samples[si]
			var st int64
			if len(s.XXX_unrecognized) > 0 {
				st = remotewrite.StartTimestamp(s.XXX_unrecognized, 3)
			}
			r, err := app.Append(ref, ls, st, s.Timestamp, s.Value, nil, nil, storage.AOptions{})
			if err == nil {
				ref = r
				p.samples++
				continue
			}
			if p.refuse(err, ls, s.Timestamp, false) {
				_ = app.Rollback()
				return nil, p.internal(err)
			}
			if refused = isSeriesError(err); refused {
				// The series cannot be created: its other samples would
				// fail the same way.
				p.discard(err, len(ts.Samples)-si-1, len(ts.Histograms))
				break
			}
		}
		if len(ts.Histograms) > 0 && !refused && !limits.EnableNativeHistograms {
			// Native histograms are not stored for this tenant
			// (-blocks-storage.tsdb.enable-native-histograms): dropped and
			// counted, as in Cortex, without failing the push.
			p.note(0, len(ts.Histograms), 0)
			p.count(reasonNativeHistogramSample, len(ts.Histograms))
			refused = true
		}
		for hi := 0; hi < len(ts.Histograms) && !refused; hi++ {
			h := &ts.Histograms[hi]
			newSeries := ref == 0
			if newSeries {
				if err := u.admitHistogramSeries(); err != nil {
					p.refuse(err, ls, h.Timestamp, true)
					p.discard(err, 0, len(ts.Histograms)-hi-1)
					refused = true
					break
				}
			}
			var (
				r   storage.SeriesRef
				err error
			)
			var st int64
			if len(h.XXX_unrecognized) > 0 {
				st = remotewrite.StartTimestamp(h.XXX_unrecognized, 17)
			}
			if h.IsFloatHistogram() {
				r, err = app.Append(ref, ls, st, h.Timestamp, 0, nil, h.ToFloatHistogram(), storage.AOptions{})
			} else {
				r, err = app.Append(ref, ls, st, h.Timestamp, 0, h.ToIntHistogram(), nil, storage.AOptions{})
			}
			if err == nil {
				ref = r
				p.samples++
				if newSeries {
					u.histogramSeriesCreated(ls)
				}
				continue
			}
			if p.refuse(err, ls, h.Timestamp, true) {
				_ = app.Rollback()
				return nil, p.internal(err)
			}
			if refused = isSeriesError(err); refused {
				p.discard(err, 0, len(ts.Histograms)-hi-1)
			}
		}
		if u.active != nil && p.samples > samplesBefore {
			u.active.mark(ref, len(ts.Histograms) > 0 && !refused, now)
		}
		if len(ts.Exemplars) == 0 {
			continue
		}
		if ref == 0 || exApp == nil {
			// Exemplars are stored only beside a stored sample.
			p.exemplarsFailed += len(ts.Exemplars)
			p.note(0, 0, len(ts.Exemplars))
			continue
		}
		exs = exs[:0]
		for ei := range ts.Exemplars {
			exs = append(exs, ts.Exemplars[ei].ToExemplar(&eb, nil))
		}
		slices.SortStableFunc(exs, func(a, b exemplar.Exemplar) int { return cmp.Compare(a.Ts, b.Ts) })
		_, err := exApp.AppendExemplars(ref, ls, exs)
		var partial *storage.AppendPartialError
		switch {
		case err == nil:
			p.exemplars += len(exs)
		case errors.As(err, &partial):
			p.exemplars += len(exs) - len(partial.ExemplarErrors)
			for _, ee := range partial.ExemplarErrors {
				p.exemplarFailed(ee.Err, ls, exs[ee.Index].Ts)
			}
		default:
			p.exemplarsFailed += len(exs) - 1
			p.note(0, 0, len(exs)-1)
			p.exemplarFailed(err, ls, exs[0].Ts)
		}
	}
	if err := app.Commit(); err != nil {
		return nil, p.internal(fmt.Errorf("writing to the write-ahead log: %w", err))
	}

	i.metrics.ingestedSamples.Add(float64(p.samples))
	i.metrics.ingestedSamplesFail.Add(float64(p.failed))
	i.metrics.ingestedExemplars.Add(float64(p.exemplars))
	i.metrics.ingestedExemplarsFail.Add(float64(p.exemplarsFailed))
	for reason, n := range p.discarded {
		i.metrics.discarded.WithLabelValues(reason, id).Add(float64(n))
	}
	u.rate.add(int64(p.samples))
	i.instance.samplesIngested(p.samples)
	resp := &client.PushResponse{Refused: p.refused}
	if p.first == "" {
		return resp, nil
	}
	resp.First, resp.FirstSeries = p.first, uint32(p.firstSeries)
	msg := p.first
	if more := p.failed + p.exemplarsFailed - 1; more > 0 {
		msg += fmt.Sprintf(" (and %d more refused samples or exemplars in this request)", more)
	}
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(resp)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, msg)
	}
	return nil, st.Err()
}

// buildLabels writes the series' labels into out, reusing its memory:
// out is valid until the next call. Remote-write senders send labels
// sorted, so they are sorted only when they are not.
func buildLabels(sb *labels.ScratchBuilder, in []prompb.Label, out *labels.Labels) {
	sb.Reset()
	sorted := true
	for i := range in {
		sb.Add(in[i].Name, in[i].Value)
		if i > 0 && in[i].Name <= in[i-1].Name {
			sorted = false
		}
	}
	if !sorted {
		sb.Sort()
	}
	sb.Overwrite(out)
}

type pushState struct {
	u         *userTSDB
	oooWindow time.Duration

	samples, failed            int
	exemplars, exemplarsFailed int
	first                      string
	discarded                  map[string]int

	// series is the index of the series being appended; refused says
	// what each series lost, and firstSeries which series first refers to.
	series      int
	firstSeries int
	refused     []*client.SeriesRefusal
}

// note records that the current series lost samples, histograms and
// exemplars.
func (p *pushState) note(samples, histograms, exemplars int) {
	if samples+histograms+exemplars == 0 {
		return
	}
	var r *client.SeriesRefusal
	if n := len(p.refused); n > 0 && p.refused[n-1].Series == uint32(p.series) {
		r = p.refused[n-1]
	} else {
		r = &client.SeriesRefusal{Series: uint32(p.series)}
		p.refused = append(p.refused, r)
	}
	r.Samples += uint32(samples)
	r.Histograms += uint32(histograms)
	r.Exemplars += uint32(exemplars)
}

// setFirst keeps msg as the answer's message if it is the first refusal.
func (p *pushState) setFirst(msg string) {
	if p.first == "" {
		p.first, p.firstSeries = msg, p.series
	}
}

// refuse records a refused sample and reports whether err is not about
// the sample but about the ingester, which fails the whole request.
func (p *pushState) refuse(err error, ls labels.Labels, ts int64, histogram bool) (fatal bool) {
	reason, detail := p.classify(err, ts)
	if reason == "" {
		return true
	}
	p.failed++
	if histogram {
		p.note(0, 1, 0)
	} else {
		p.note(1, 0, 0)
	}
	if p.discarded == nil {
		p.discarded = map[string]int{}
	}
	p.discarded[reason]++
	if p.first == "" {
		p.setFirst(fmt.Sprintf("series %s: %s", ls.String(), detail))
	}
	return false
}

// invalidSeries records a series refused for its labels, with its samples
// and exemplars.
func (p *pushState) invalidSeries(r validation.LabelReason, msg string, ts *prompb.TimeSeries) {
	n := len(ts.Samples) + len(ts.Histograms)
	p.failed += n
	p.exemplarsFailed += len(ts.Exemplars)
	p.note(len(ts.Samples), len(ts.Histograms), len(ts.Exemplars))
	if p.discarded == nil {
		p.discarded = map[string]int{}
	}
	p.discarded[r.String()] += n
	p.setFirst(msg)
}

// count records n samples discarded for reason, which the request is not
// refused for.
func (p *pushState) count(reason string, n int) {
	if p.discarded == nil {
		p.discarded = map[string]int{}
	}
	p.discarded[reason] += n
}

// discard counts more float and histogram samples refused for the same
// reason as err.
func (p *pushState) discard(err error, samples, histograms int) {
	n := samples + histograms
	if n <= 0 {
		return
	}
	reason, _ := p.classify(err, 0)
	p.failed += n
	p.note(samples, histograms, 0)
	p.discarded[reason] += n
}

func (p *pushState) exemplarFailed(err error, ls labels.Labels, ts int64) {
	p.exemplarsFailed++
	p.note(0, 0, 1)
	if p.first == "" {
		p.setFirst(fmt.Sprintf("series %s: exemplar at %s refused: %v", ls.String(), formatTS(ts), err))
	}
}

func (p *pushState) internal(err error) error {
	return status.Errorf(codes.Internal, "storing samples of tenant %q: %v", p.u.id, err)
}

// isSeriesError tells errors about the series itself (limits, invalid
// labels) from errors about one sample.
func isSeriesError(err error) bool {
	var limit *errSeriesLimit
	return errors.As(err, &limit) || errors.Is(err, tsdb.ErrInvalidSample)
}

// classify returns the discard reason and a message for a refused sample,
// or no reason for an error that is not the sample's fault.
func (p *pushState) classify(err error, ts int64) (reason, detail string) {
	var (
		limit *errSeriesLimit
		herr  histogram.Error
	)
	switch {
	case errors.As(err, &limit):
		return limit.reason, limit.msg
	case errors.Is(err, storage.ErrOutOfOrderSample):
		if p.oooWindow <= 0 {
			return reasonSampleOutOfOrder, fmt.Sprintf("out-of-order sample at %s: older than the series' newest sample, and out-of-order samples are refused (-ingester.out-of-order-time-window is 0)", formatTS(ts))
		}
		return reasonSampleOutOfOrder, fmt.Sprintf("out-of-order sample at %s: older than the series' newest sample", formatTS(ts))
	case errors.Is(err, storage.ErrTooOldSample):
		return reasonSampleTooOld, fmt.Sprintf("sample too old at %s: further behind the tenant's newest sample than the out-of-order window of %s (-ingester.out-of-order-time-window)", formatTS(ts), p.oooWindow)
	case errors.Is(err, storage.ErrOutOfBounds):
		return reasonSampleOutOfBounds, fmt.Sprintf("sample out of bounds at %s: older than the ingester's in-memory block still accepts (about half a block range behind the newest sample), and out-of-order samples are refused (-ingester.out-of-order-time-window is 0)", formatTS(ts))
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		msg := err.Error()
		if rest, ok := strings.CutPrefix(msg, fmt.Sprintf("duplicate sample for timestamp %d", ts)); ok {
			return reasonNewValueForTimestamp, "duplicate sample for " + formatTS(ts) + rest
		}
		return reasonNewValueForTimestamp, msg + " at " + formatTS(ts)
	case errors.As(err, &herr):
		return reasonInvalidHistogram, fmt.Sprintf("invalid native histogram at %s: %v", formatTS(ts), err)
	case errors.Is(err, tsdb.ErrInvalidSample):
		return reasonInvalidSeries, fmt.Sprintf("invalid series: %v", err)
	}
	return "", ""
}

func formatTS(ms int64) string {
	return fmt.Sprintf("timestamp %d (%s)", ms, time.UnixMilli(ms).UTC().Format(time.RFC3339Nano))
}
