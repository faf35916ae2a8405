package gossip

import (
	"context"
	"strings"
	"sync"
)

// watchers are the WatchKey and WatchPrefix calls in progress. A
// notification only says that a key changed; the watcher reads the value
// when it gets to it, so changes that arrive meanwhile coalesce.
type watchers struct {
	mu       sync.Mutex
	keys     map[string]map[chan struct{}]struct{}
	prefixes map[string]map[chan string]struct{}
}

func (w *watchers) init() {
	w.keys = map[string]map[chan struct{}]struct{}{}
	w.prefixes = map[string]map[chan string]struct{}{}
}

func (w *watchers) notify(key string, m *kvMetrics) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m.watchNotifications.Inc()
	for ch := range w.keys[key] {
		select {
		case ch <- struct{}{}:
		default: // a notification is pending already
		}
	}
	for prefix, chans := range w.prefixes {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		for ch := range chans {
			select {
			case ch <- key:
			default: // full: the watcher reads the latest value of its pending keys anyway
			}
		}
	}
}

// watchKey calls f with the value of key after each change until ctx ends,
// the KV stops or f returns false.
func (k *KV) watchKey(ctx context.Context, key string, f func(any) bool) {
	ch := make(chan struct{}, 1)
	w := &k.watchers
	w.mu.Lock()
	if w.keys[key] == nil {
		w.keys[key] = map[chan struct{}]struct{}{}
	}
	w.keys[key][ch] = struct{}{}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.keys[key], ch)
		if len(w.keys[key]) == 0 {
			delete(w.keys, key)
		}
		w.mu.Unlock()
	}()
	for {
		select {
		case <-ch:
			value, _ := k.store.get(key)
			if !f(value) {
				return
			}
		case <-ctx.Done():
			return
		case <-k.stopped:
			return
		}
	}
}

// watchPrefix calls f with each changed key under prefix and its value,
// skipping deleted keys, until ctx ends, the KV stops or f returns false.
func (k *KV) watchPrefix(ctx context.Context, prefix string, f func(string, any) bool) {
	size := k.cfg.WatchPrefixBufferSize
	if size <= 0 {
		size = 128
	}
	ch := make(chan string, size)
	w := &k.watchers
	w.mu.Lock()
	if w.prefixes[prefix] == nil {
		w.prefixes[prefix] = map[chan string]struct{}{}
	}
	w.prefixes[prefix][ch] = struct{}{}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.prefixes[prefix], ch)
		if len(w.prefixes[prefix]) == 0 {
			delete(w.prefixes, prefix)
		}
		w.mu.Unlock()
	}()
	for {
		select {
		case key := <-ch:
			value, _ := k.store.get(key)
			if value == nil {
				continue
			}
			if !f(key, value) {
				return
			}
		case <-ctx.Done():
			return
		case <-k.stopped:
			return
		}
	}
}
