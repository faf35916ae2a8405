package ingester

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
)

// metadataStore keeps the metadata a tenant sent, each distinct type, help
// and unit of a metric family until it is not refreshed within the retain
// period (Prometheus resends metadata every minute by default), as Cortex's
// ingester does: a family whose help changed shows both until the old one
// is forgotten. -ingester.max-metadata-per-user bounds the families,
// -ingester.max-metadata-per-metric the variants of one family.
type metadataStore struct {
	gauge interface{ Add(float64) }

	mu      sync.Mutex
	entries map[string]map[metadataVariant]*time.Time // family -> variant -> last seen
}

type metadataVariant struct{ typ, help, unit string }

// Discard reasons of cortex_discarded_metadata_total, as Cortex names them.
const (
	reasonPerUserMetadataLimit   = "per_user_metadata_limit"
	reasonPerMetricMetadataLimit = "per_metric_metadata_limit"
)

func newMetadataStore(gauge interface{ Add(float64) }) *metadataStore {
	return &metadataStore{gauge: gauge, entries: map[string]map[metadataVariant]*time.Time{}}
}

// add stores mds, at most maxPerUser families and maxPerMetric variants
// of each (0: unlimited), and returns how many it stored and how many it
// dropped over each limit, by discard reason.
func (s *metadataStore) add(mds []prompb.MetricMetadata, now time.Time, maxPerUser, maxPerMetric int) (added int, dropped map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range mds {
		md := &mds[i]
		if md.MetricFamilyName == "" {
			continue
		}
		// The request's strings point into a buffer reused once Push
		// returns: the store keeps copies, made only for what is new
		// (Prometheus resends the same metadata every minute); a lookup
		// with the request's strings does not keep them.
		fam, ok := s.entries[md.MetricFamilyName]
		if !ok && maxPerUser > 0 && len(s.entries) >= maxPerUser {
			dropped = countDrop(dropped, reasonPerUserMetadataLimit)
			continue
		}
		v := metadataVariant{typ: metricTypeName(md.Type), help: md.Help, unit: md.Unit}
		// A known variant's time is set through its pointer: assigning
		// to the map would also replace its key with the request's.
		if lastSeen, seen := fam[v]; seen {
			*lastSeen = now
		} else {
			if maxPerMetric > 0 && len(fam) >= maxPerMetric {
				dropped = countDrop(dropped, reasonPerMetricMetadataLimit)
				continue
			}
			if !ok {
				fam = map[metadataVariant]*time.Time{}
				s.entries[strings.Clone(md.MetricFamilyName)] = fam
			}
			v.help, v.unit = strings.Clone(v.help), strings.Clone(v.unit)
			t := now
			fam[v] = &t
			s.gauge.Add(1)
		}
		added++
	}
	return added, dropped
}

func countDrop(dropped map[string]int, reason string) map[string]int {
	if dropped == nil {
		dropped = map[string]int{}
	}
	dropped[reason]++
	return dropped
}

func (s *metadataStore) purge(before time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, fam := range s.entries {
		for v, lastSeen := range fam {
			if lastSeen.Before(before) {
				delete(fam, v)
				s.gauge.Add(-1)
			}
		}
		if len(fam) == 0 {
			delete(s.entries, name)
		}
	}
}

func (s *metadataStore) clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fam := range s.entries {
		s.gauge.Add(-float64(len(fam)))
	}
	s.entries = map[string]map[metadataVariant]*time.Time{}
}

// list returns the metadata of metric (every metric when empty), sorted by
// name, of at most limit families and perMetric entries of each (0 or less:
// no limit).
func (s *metadataStore) list(metric string, limit, perMetric int) []*client.MetricMetadata {
	s.mu.Lock()
	var names []string
	if metric != "" {
		if _, ok := s.entries[metric]; ok {
			names = []string{metric}
		}
	} else {
		names = make([]string, 0, len(s.entries))
		for name := range s.entries {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if limit > 0 && len(names) > limit {
		names = names[:limit]
	}
	var out []*client.MetricMetadata
	for _, name := range names {
		first := len(out)
		for v := range s.entries[name] {
			out = append(out, &client.MetricMetadata{MetricFamilyName: name, Type: v.typ, Help: v.help, Unit: v.unit})
		}
		slices.SortFunc(out[first:], func(a, b *client.MetricMetadata) int {
			return strings.Compare(a.Type+"\x00"+a.Help+"\x00"+a.Unit, b.Type+"\x00"+b.Help+"\x00"+b.Unit)
		})
		if perMetric > 0 && len(out)-first > perMetric {
			out = out[:first+perMetric]
		}
	}
	s.mu.Unlock()
	return out
}

// metricTypeNames are the lower-case names of the metadata types.
var metricTypeNames = func() map[prompb.MetricMetadata_MetricType]string {
	m := map[prompb.MetricMetadata_MetricType]string{}
	for v, name := range prompb.MetricMetadata_MetricType_name {
		m[prompb.MetricMetadata_MetricType(v)] = strings.ToLower(name)
	}
	return m
}()

// metricTypeName is the lower-case name of t, as the metadata API shows it.
func metricTypeName(t prompb.MetricMetadata_MetricType) string {
	if name, ok := metricTypeNames[t]; ok {
		return name
	}
	return strings.ToLower(t.String())
}
