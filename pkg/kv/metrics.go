package kv

import (
	"context"
	"time"

	"github.com/grafana/dskit/kv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// instrumented times a store's operations in kv_request_duration_seconds,
// as dskit's clients are timed (its wrapper is not exported): labels
// operation and status_code, constant labels type (the store), role
// ("primary") and, from the registerer, kv_name.
type instrumented struct {
	kv.Client
	duration *prometheus.HistogramVec
}

func newInstrumented(c kv.Client, store string, reg prometheus.Registerer) kv.Client {
	if reg == nil {
		return c
	}
	return &instrumented{Client: c, duration: promauto.With(reg).NewHistogramVec(prometheus.HistogramOpts{
		Name:                            "kv_request_duration_seconds",
		Help:                            "Time spent on kv store requests.",
		Buckets:                         prometheus.DefBuckets,
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  100,
		NativeHistogramMinResetDuration: time.Hour,
		ConstLabels:                     prometheus.Labels{"type": store, "role": "primary"},
	}, []string{"operation", "status_code"})}
}

func (m *instrumented) observe(op string, start time.Time, err error) {
	code := "200"
	if err != nil {
		code = "500"
	}
	m.duration.WithLabelValues(op, code).Observe(time.Since(start).Seconds())
}

func (m *instrumented) List(ctx context.Context, prefix string) ([]string, error) {
	start := time.Now()
	keys, err := m.Client.List(ctx, prefix)
	m.observe("List", start, err)
	return keys, err
}

func (m *instrumented) Get(ctx context.Context, key string) (any, error) {
	start := time.Now()
	v, err := m.Client.Get(ctx, key)
	m.observe("GET", start, err)
	return v, err
}

func (m *instrumented) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := m.Client.Delete(ctx, key)
	m.observe("Delete", start, err)
	return err
}

func (m *instrumented) CAS(ctx context.Context, key string, f func(in any) (out any, retry bool, err error)) error {
	start := time.Now()
	err := m.Client.CAS(ctx, key, f)
	m.observe("CAS", start, err)
	return err
}

func (m *instrumented) WatchKey(ctx context.Context, key string, f func(any) bool) {
	start := time.Now()
	m.Client.WatchKey(ctx, key, f)
	m.observe("WatchKey", start, nil)
}

func (m *instrumented) WatchPrefix(ctx context.Context, prefix string, f func(string, any) bool) {
	start := time.Now()
	m.Client.WatchPrefix(ctx, prefix, f)
	m.observe("WatchPrefix", start, nil)
}
