package distributor

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/ha"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// HATracker elects one replica of each tenant's HA Prometheus clusters
// (pkg/ha.Tracker).
type HATracker interface {
	CheckReplica(ctx context.Context, userID, cluster, replica string) error
}

// haDedup is the distributor's side of HA pair deduplication.
type haDedup struct {
	tracker        HATracker
	dedupedSamples *prometheus.CounterVec
	nonHASamples   *prometheus.CounterVec
}

// SetHATracker turns on HA pair deduplication for the tenants with
// accept_ha_samples (-distributor.ha-tracker.enable). Call it before the
// distributor serves; reg receives cortex_distributor_deduped_samples_total
// and cortex_distributor_non_ha_samples_received_total.
func (d *Distributor) SetHATracker(t HATracker, reg prometheus.Registerer) {
	f := promauto.With(reg)
	d.ha = &haDedup{
		tracker:        t,
		dedupedSamples: f.NewCounterVec(prometheus.CounterOpts{Name: "cortex_distributor_deduped_samples_total", Help: "The total number of deduplicated samples."}, []string{"user", "cluster"}),
		nonHASamples:   f.NewCounterVec(prometheus.CounterOpts{Name: "cortex_distributor_non_ha_samples_received_total", Help: "The total number of received samples for a user that has HA tracking turned on, but the sample didn't contain both HA labels."}, []string{"user"}),
	}
}

// errDeduplicated answers a request of a replica that is not elected: 202
// and no body, as Cortex answers it, so that the replica does not retry.
var errDeduplicated = &PushError{Code: http.StatusAccepted}

// checkHA applies HA deduplication to req, as Cortex does before
// validation: the cluster and replica labels of the request's first series
// name its sender. A request of a replica that is not elected is dropped
// (errDeduplicated); one of the elected replica has the replica label
// removed from every series, and removed reports it.
func (d *Distributor) checkHA(ctx context.Context, userID string, limits *validation.Limits, req *prompb.WriteRequest) (removed bool, err error) {
	if d.ha == nil || !limits.AcceptHASamples || len(req.Timeseries) == 0 {
		return false, nil
	}
	if limits.AcceptMixedHASamples {
		return d.checkHAPerSeries(ctx, userID, limits, req)
	}
	var cluster, replica string
	for _, l := range req.Timeseries[0].Labels {
		switch l.Name {
		case limits.HAClusterLabel:
			cluster = l.Value
		case limits.HAReplicaLabel:
			replica = l.Value
		}
	}
	samples := 0
	for i := range req.Timeseries {
		samples += len(req.Timeseries[i].Samples) + len(req.Timeseries[i].Histograms)
	}
	if cluster == "" || replica == "" {
		d.ha.nonHASamples.WithLabelValues(userID).Add(float64(samples))
		return false, nil
	}
	// The label values point into the request's buffer, which is reused:
	// the tracker and the metrics keep copies.
	cluster, replica = strings.Clone(cluster), strings.Clone(replica)
	if err := d.ha.tracker.CheckReplica(ctx, userID, cluster, replica); err != nil {
		switch {
		case ha.IsReplicasNotMatch(err):
			d.ha.dedupedSamples.WithLabelValues(userID, cluster).Add(float64(samples))
			return false, errDeduplicated
		case ha.IsTooManyClusters(err):
			d.metrics.discardedSamples.WithLabelValues("too_many_ha_clusters", userID).Add(float64(samples))
			return false, &PushError{Code: http.StatusBadRequest, Msg: fmt.Sprintf("cluster %q of tenant %q: %v", cluster, userID, err)}
		}
		return false, &PushError{Code: http.StatusInternalServerError, Msg: err.Error()}
	}
	for i := range req.Timeseries {
		ls := req.Timeseries[i].Labels
		for j := range ls {
			if ls[j].Name == limits.HAReplicaLabel {
				req.Timeseries[i].Labels = slices.Delete(ls, j, j+1)
				break
			}
		}
	}
	return true, nil
}

// checkHAPerSeries is checkHA with -experimental.distributor.ha-tracker.mixed-ha-samples,
// as Cortex does it: each series carrying both labels is checked against
// its own cluster's elected replica, and kept without its replica label
// only if it comes from that replica; a series without both labels is
// kept as it is. A request may then mix clusters and non-HA series.
func (d *Distributor) checkHAPerSeries(ctx context.Context, userID string, limits *validation.Limits, req *prompb.WriteRequest) (removed bool, err error) {
	kept := req.Timeseries[:0]
	for i := range req.Timeseries {
		s := req.Timeseries[i]
		cluster, replica, at := "", "", -1
		for j, l := range s.Labels {
			switch l.Name {
			case limits.HAClusterLabel:
				cluster = l.Value
			case limits.HAReplicaLabel:
				replica, at = l.Value, j
			}
		}
		samples := float64(len(s.Samples) + len(s.Histograms))
		if cluster == "" || replica == "" {
			d.ha.nonHASamples.WithLabelValues(userID).Add(samples)
			kept = append(kept, s)
			continue
		}
		cluster, replica = strings.Clone(cluster), strings.Clone(replica)
		if err := d.ha.tracker.CheckReplica(ctx, userID, cluster, replica); err != nil {
			switch {
			case ha.IsReplicasNotMatch(err):
				d.ha.dedupedSamples.WithLabelValues(userID, cluster).Add(samples)
			case ha.IsTooManyClusters(err):
				d.metrics.discardedSamples.WithLabelValues("too_many_ha_clusters", userID).Add(samples)
			default:
				return false, &PushError{Code: http.StatusInternalServerError, Msg: err.Error()}
			}
			removed = true
			continue
		}
		s.Labels = slices.Delete(s.Labels, at, at+1)
		kept = append(kept, s)
		removed = true
	}
	// The dropped series' elements are cleared so that the request holds
	// no references past its length.
	clear(req.Timeseries[len(kept):])
	req.Timeseries = kept
	return removed, nil
}
