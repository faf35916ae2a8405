package ingester

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
)

// metadataStore keeps the latest metadata of each metric family a tenant
// sent, forgetting families not refreshed within the retain period
// (Prometheus resends metadata every minute by default).
type metadataStore struct {
	gauge interface{ Add(float64) }

	mu      sync.Mutex
	entries map[string]*metadataEntry
}

type metadataEntry struct {
	typ, help, unit string
	lastSeen        time.Time
}

func newMetadataStore(gauge interface{ Add(float64) }) *metadataStore {
	return &metadataStore{gauge: gauge, entries: map[string]*metadataEntry{}}
}

func (s *metadataStore) add(mds []prompb.MetricMetadata, now time.Time) int {
	added := 0
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range mds {
		md := &mds[i]
		if md.MetricFamilyName == "" {
			continue
		}
		// The request's strings point into a buffer reused once Push
		// returns: the store keeps copies, made only when something
		// changed (Prometheus resends the same metadata every minute).
		// An existing entry is updated in place, not assigned, as
		// assigning would also replace the map's key with the request's.
		e, ok := s.entries[md.MetricFamilyName]
		if !ok {
			e = &metadataEntry{}
			s.entries[strings.Clone(md.MetricFamilyName)] = e
			s.gauge.Add(1)
		}
		if e.help != md.Help {
			e.help = strings.Clone(md.Help)
		}
		if e.unit != md.Unit {
			e.unit = strings.Clone(md.Unit)
		}
		e.typ = metricTypeName(md.Type)
		e.lastSeen = now
		added++
	}
	return added
}

func (s *metadataStore) purge(before time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, e := range s.entries {
		if e.lastSeen.Before(before) {
			delete(s.entries, name)
			s.gauge.Add(-1)
		}
	}
}

func (s *metadataStore) clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gauge.Add(-float64(len(s.entries)))
	s.entries = map[string]*metadataEntry{}
}

// list returns the metadata of metric (every metric when empty), sorted by
// name, at most limit families (0 or less: no limit).
func (s *metadataStore) list(metric string, limit int) []*client.MetricMetadata {
	s.mu.Lock()
	var out []*client.MetricMetadata
	add := func(name string, e *metadataEntry) {
		out = append(out, &client.MetricMetadata{MetricFamilyName: name, Type: e.typ, Help: e.help, Unit: e.unit})
	}
	if metric != "" {
		if e, ok := s.entries[metric]; ok {
			add(metric, e)
		}
	} else {
		out = make([]*client.MetricMetadata, 0, len(s.entries))
		for name, e := range s.entries {
			add(name, e)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b *client.MetricMetadata) int { return strings.Compare(a.MetricFamilyName, b.MetricFamilyName) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
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
