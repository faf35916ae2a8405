package kv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/kv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// multiClient is the multi store (-<ring>.store=multi) when one of its two
// stores is the gossip store. dskit's MultiClient does the same for its own
// stores, but it only takes clients it builds itself (its client list is of
// an unexported type) and cannot build this project's gossip store; this
// one follows its behaviour: reads, writes and watches go to the primary,
// successful writes are mirrored to the other store when mirroring is on,
// and multi_kv_config in the runtime configuration switches the primary
// (restarting watches on the new one) and mirroring.
type multiClient struct {
	stores        []namedClient
	primary       atomic.Int32
	mirroring     atomic.Bool
	mirrorTimeout time.Duration
	logger        *slog.Logger

	mu      sync.Mutex
	watches map[*watch]struct{}

	primaryGauge *prometheus.GaugeVec
	mirrorGauge  prometheus.Gauge
	mirrorWrites prometheus.Counter
	mirrorErrors prometheus.Counter
}

type namedClient struct {
	name   string
	client kv.Client
}

// watch is a WatchKey or WatchPrefix running on the store at index store;
// cancel ends it so that it restarts on a new primary.
type watch struct {
	store  int
	cancel context.CancelFunc
}

func newMultiClient(cfg kv.MultiConfig, primary, secondary kv.Client, reg prometheus.Registerer, logger *slog.Logger) *multiClient {
	m := &multiClient{
		stores:        []namedClient{{cfg.Primary, primary}, {cfg.Secondary, secondary}},
		mirrorTimeout: cfg.MirrorTimeout,
		logger:        logger,
		watches:       map[*watch]struct{}{},
		primaryGauge: promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{
			Name: "multikv_primary_store", Help: "Selected primary KV store",
		}, []string{"store"}),
		mirrorGauge: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "multikv_mirror_enabled", Help: "Is mirroring to secondary store enabled",
		}),
		mirrorWrites: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "multikv_mirror_writes_total", Help: "Number of mirror-writes to secondary store",
		}),
		mirrorErrors: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "multikv_mirror_write_errors_total", Help: "Number of failures to mirror-write to secondary store",
		}),
	}
	m.setMirroring(cfg.MirrorEnabled)
	m.updatePrimaryGauge()
	if cfg.ConfigProvider != nil {
		go m.followRuntimeConfig(cfg.ConfigProvider())
	}
	return m
}

// followRuntimeConfig applies multi_kv_config until the channel closes.
func (m *multiClient) followRuntimeConfig(updates <-chan kv.MultiRuntimeConfig) {
	for rc := range updates {
		if rc.Mirroring != nil {
			m.setMirroring(*rc.Mirroring)
		}
		if rc.PrimaryStore != "" {
			if err := m.setPrimary(rc.PrimaryStore); err != nil {
				m.logger.Error("multi_kv_config: the primary store is not switched", "err", err)
			}
		}
	}
}

func (m *multiClient) setMirroring(on bool) {
	if m.mirroring.Swap(on) != on {
		m.logger.Info("mirroring to the secondary KV store toggled", "enabled", on)
	}
	if on {
		m.mirrorGauge.Set(1)
	} else {
		m.mirrorGauge.Set(0)
	}
}

func (m *multiClient) setPrimary(name string) error {
	next := -1
	for i, s := range m.stores {
		if s.name == name {
			next = i
		}
	}
	if next < 0 {
		return fmt.Errorf("%q is neither of the multi store's stores (%s, %s)", name, m.stores[0].name, m.stores[1].name)
	}
	if int(m.primary.Swap(int32(next))) == next {
		return nil
	}
	m.logger.Info("switched the primary KV store", "primary", name)
	m.updatePrimaryGauge()
	m.mu.Lock()
	defer m.mu.Unlock()
	for w := range m.watches {
		if w.store != next {
			w.cancel()
		}
	}
	return nil
}

func (m *multiClient) updatePrimaryGauge() {
	p := int(m.primary.Load())
	for i, s := range m.stores {
		v := 0.0
		if i == p {
			v = 1
		}
		m.primaryGauge.WithLabelValues(s.name).Set(v)
	}
}

func (m *multiClient) current() (int, namedClient) {
	p := int(m.primary.Load())
	return p, m.stores[p]
}

func (m *multiClient) List(ctx context.Context, prefix string) ([]string, error) {
	_, s := m.current()
	return s.client.List(ctx, prefix)
}

func (m *multiClient) Get(ctx context.Context, key string) (any, error) {
	_, s := m.current()
	return s.client.Get(ctx, key)
}

func (m *multiClient) Delete(ctx context.Context, key string) error {
	_, s := m.current()
	return s.client.Delete(ctx, key)
}

// CAS changes key in the primary and, with mirroring on, writes the result
// to the other store too.
func (m *multiClient) CAS(ctx context.Context, key string, f func(in any) (out any, retry bool, err error)) error {
	p, s := m.current()
	var written any
	err := s.client.CAS(ctx, key, func(in any) (any, bool, error) {
		out, retry, err := f(in)
		written = out
		return out, retry, err
	})
	if err == nil && written != nil && m.mirroring.Load() {
		m.mirror(ctx, p, key, written)
	}
	return err
}

func (m *multiClient) mirror(ctx context.Context, primary int, key string, value any) {
	if m.mirrorTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.mirrorTimeout)
		defer cancel()
	}
	for i, s := range m.stores {
		if i == primary {
			continue
		}
		m.mirrorWrites.Inc()
		err := s.client.CAS(ctx, key, func(any) (any, bool, error) { return value, false, nil })
		if err != nil {
			m.mirrorErrors.Inc()
			m.logger.Warn("mirroring a value to the secondary KV store failed", "key", key, "primary", m.stores[primary].name, "secondary", s.name, "err", err)
		}
	}
}

func (m *multiClient) WatchKey(ctx context.Context, key string, f func(any) bool) {
	m.onPrimary(ctx, func(ctx context.Context, c kv.Client) { c.WatchKey(ctx, key, f) })
}

func (m *multiClient) WatchPrefix(ctx context.Context, prefix string, f func(string, any) bool) {
	m.onPrimary(ctx, func(ctx context.Context, c kv.Client) { c.WatchPrefix(ctx, prefix, f) })
}

// onPrimary runs a watch on the primary store, and again on the new one
// each time the primary is switched, until ctx ends or the watch returns
// by itself (its callback asked to stop).
func (m *multiClient) onPrimary(ctx context.Context, run func(context.Context, kv.Client)) {
	for ctx.Err() == nil {
		p, s := m.current()
		wctx, cancel := context.WithCancel(ctx)
		w := &watch{store: p, cancel: cancel}
		m.mu.Lock()
		m.watches[w] = struct{}{}
		m.mu.Unlock()
		if int(m.primary.Load()) != p { // switched before the watch was registered
			cancel()
		}
		run(wctx, s.client)
		m.mu.Lock()
		delete(m.watches, w)
		m.mu.Unlock()
		switched := errors.Is(wctx.Err(), context.Canceled) && ctx.Err() == nil
		cancel()
		if !switched {
			return
		}
	}
}
