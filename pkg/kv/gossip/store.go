package gossip

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/grafana/dskit/kv/codec"
	dskitml "github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/services"
)

const (
	// maxCASRetries bounds one CAS, as in dskit.
	maxCASRetries = 10
	// noChangeRetryDelay is waited when the CAS function changed something
	// that Merge did not see: ring timestamps have one-second resolution.
	noChangeRetryDelay = time.Second
)

var (
	errVersionMismatch = errors.New("the value changed while the CAS function ran")
	errNoChange        = errors.New("the CAS function returned a value, but merging it changed nothing")
)

// entry is the local state of one key.
type entry struct {
	value   dskitml.Mergeable
	version uint // local only: bumped on every change, used by CAS
	codecID string
	deleted bool
	updated time.Time // last change; the newer side wins the deleted flag
}

// store holds the keys and the codecs their values are encoded with.
type store struct {
	mu      sync.Mutex
	entries map[string]entry
	codecs  map[string]codec.Codec
}

func newStore() store {
	return store{entries: map[string]entry{}, codecs: map[string]codec.Codec{}}
}

func (s *store) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

func (s *store) register(c codec.Codec) {
	s.mu.Lock()
	s.codecs[c.CodecID()] = c
	s.mu.Unlock()
}

func (s *store) codec(id string) codec.Codec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.codecs[id]
}

func (s *store) list(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k, e := range s.entries {
		if !e.deleted && strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// get returns a copy of the value of key without its tombstones (nil when
// the key is missing or deleted), and the version it was read at.
func (s *store) get(key string) (any, uint) {
	s.mu.Lock()
	e := s.entries[key]
	var v dskitml.Mergeable
	if e.value != nil && !e.deleted {
		v = e.value.Clone()
	}
	s.mu.Unlock()
	if v == nil {
		return nil, e.version
	}
	// Clients never see tombstones; a CAS that drops an entry makes one.
	_, _ = v.RemoveTombstones(time.Time{})
	return v, e.version
}

// mergeResult is what a merge changed; version 0 means nothing.
type mergeResult struct {
	change  dskitml.Mergeable // what peers need to learn (nil: nothing), safe to use outside the lock
	version uint
	deleted bool
	updated time.Time
}

// merge merges incoming into the value of key. With casVersion > 0 it fails
// with errVersionMismatch unless the key is still at that version, and
// merges as a local CAS so that Merge can see removals.
func (k *KV) merge(key string, incoming dskitml.Mergeable, incomingShared bool, casVersion uint, codecID string, deleted bool, updated time.Time) (mergeResult, error) {
	s := &k.store
	s.mu.Lock()
	defer s.mu.Unlock()
	curr := s.entries[key]
	if curr.value == nil && deleted {
		return mergeResult{}, nil // the deletion of a key we never had: nothing to delete
	}
	if casVersion > 0 && curr.version != casVersion {
		return mergeResult{}, errVersionMismatch
	}
	var result, change dskitml.Mergeable
	if curr.value == nil {
		result = incoming
		if incomingShared {
			result = incoming.Clone()
		}
		change = result
	} else {
		var err error
		if change, err = curr.value.Merge(incoming, casVersion > 0); err != nil {
			return mergeResult{}, err
		}
		result = curr.value // merged in place
	}
	newDeleted, newUpdated := curr.deleted, curr.updated
	if updated.After(curr.updated) {
		newDeleted, newUpdated = deleted, updated
	}
	if isEmpty(change) && newDeleted == curr.deleted {
		return mergeResult{}, nil
	}
	if timeout := k.cfg.LeftIngestersTimeout; timeout > 0 {
		limit := time.Now().Add(-timeout)
		_, removed := result.RemoveTombstones(limit)
		k.metrics.removedTombstones.Add(float64(removed))
		if change != nil {
			change.RemoveTombstones(limit)
			if isEmpty(change) && newDeleted == curr.deleted {
				// The change was only expired tombstones: keep the result
				// (it may have been merged in place), tell no one.
				version := curr.version + 1
				s.entries[key] = entry{value: result, version: version, codecID: codecID, deleted: newDeleted, updated: newUpdated}
				return mergeResult{version: version, deleted: newDeleted, updated: newUpdated}, nil
			}
		}
	}
	if change == nil {
		change = result // only the deleted flag changed
	}
	if change == result {
		change = result.Clone()
	}
	version := curr.version + 1
	s.entries[key] = entry{value: result, version: version, codecID: codecID, deleted: newDeleted, updated: newUpdated}
	return mergeResult{change: change, version: version, deleted: newDeleted, updated: newUpdated}, nil
}

func isEmpty(m dskitml.Mergeable) bool { return m == nil || len(m.MergeContent()) == 0 }

// cas runs f on a copy of the current value and merges its result, retrying
// when the value changed meanwhile; the change is broadcast to peers.
func (k *KV) cas(ctx context.Context, key string, c codec.Codec, f func(in any) (out any, retry bool, err error)) error {
	var lastErr error
attempts:
	for range maxCASRetries {
		k.metrics.casAttempts.Inc()
		if errors.Is(lastErr, errNoChange) {
			select {
			case <-time.After(noChangeRetryDelay):
			case <-ctx.Done():
				lastErr = fmt.Errorf("%w (after: %w)", ctx.Err(), lastErr)
				break attempts
			}
		}
		in, version := k.store.get(key)
		out, retry, err := f(in)
		if err != nil {
			lastErr = fmt.Errorf("CAS function: %w", err)
			if !retry {
				break
			}
			continue
		}
		if out == nil {
			return nil // the caller is happy with the current value
		}
		value, ok := out.(dskitml.Mergeable)
		if !ok || value == nil {
			lastErr = fmt.Errorf("CAS function returned %T, which is not a memberlist.Mergeable", out)
			break
		}
		res, err := k.merge(key, value, true, version, c.CodecID(), false, time.Now())
		switch {
		case errors.Is(err, errVersionMismatch):
			lastErr = err
			continue
		case err != nil:
			lastErr = fmt.Errorf("merging the CAS result: %w", err)
			if !retry {
				break attempts
			}
			continue
		case res.version == 0:
			lastErr = errNoChange
			continue
		}
		k.metrics.casSuccesses.Inc()
		k.watchers.notify(key, k.metrics)
		k.broadcast(key, res, c, true)
		return nil
	}
	k.metrics.casFailures.Inc()
	return fmt.Errorf("gossip CAS of key %q failed: %w", key, lastErr)
}

// delete marks key deleted and tells the peers.
func (k *KV) delete(key string) error {
	s := &k.store
	s.mu.Lock()
	curr, ok := s.entries[key]
	if !ok || curr.deleted || curr.value == nil {
		s.mu.Unlock()
		return nil
	}
	c := s.codecs[curr.codecID]
	if c == nil {
		s.mu.Unlock()
		return fmt.Errorf("deleting key %q: codec %q is not registered", key, curr.codecID)
	}
	now := time.Now()
	curr.deleted, curr.updated, curr.version = true, now, curr.version+1
	s.entries[key] = curr
	res := mergeResult{change: curr.value.Clone(), version: curr.version, deleted: true, updated: now}
	s.mu.Unlock()
	k.watchers.notify(key, k.metrics)
	k.broadcast(key, res, c, true)
	return nil
}

// sweep removes tombstones older than -memberlist.left-ingesters-timeout and
// keys deleted longer than -memberlist.obsolete-entries-timeout ago. Every
// member does so on its own, so nothing is broadcast.
func (k *KV) sweep(now time.Time) {
	s := &k.store
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, e := range s.entries {
		if e.deleted && k.cfg.TombstoneTimeout > 0 && now.Sub(e.updated) > k.cfg.TombstoneTimeout {
			delete(s.entries, key)
			continue
		}
		if e.value == nil || k.cfg.LeftIngestersTimeout <= 0 {
			continue
		}
		if _, removed := e.value.RemoveTombstones(now.Add(-k.cfg.LeftIngestersTimeout)); removed > 0 {
			k.metrics.removedTombstones.Add(float64(removed))
			e.version++ // a CAS that read the old value must retry
			s.entries[key] = e
		}
	}
}

// broadcast queues a change for the peers. Changes made here go first;
// during shutdown they are no longer queued, as in dskit.
func (k *KV) broadcast(key string, res mergeResult, c codec.Codec, local bool) {
	if res.change == nil {
		return
	}
	if local && k.service.State() != services.Running {
		k.logger.Warn("not broadcasting a local change: the gossip KV is not running", "key", key)
		return
	}
	data, err := c.Encode(res.change)
	if err != nil {
		k.metrics.broadcastsDropped.Inc()
		k.logger.Error("encoding a change for broadcast failed", "key", key, "err", err)
		return
	}
	pair := dskitml.KeyValuePair{Key: key, Value: data, Codec: c.CodecID(), Deleted: res.deleted, UpdateTimeMillis: millis(res.updated)}
	msg, err := pair.Marshal()
	if err != nil {
		k.metrics.broadcastsDropped.Inc()
		k.logger.Error("encoding a change for broadcast failed", "key", key, "err", err)
		return
	}
	b := change{key: key, content: res.change.MergeContent(), version: res.version, msg: msg}
	k.metrics.broadcastsQueued.Inc()
	if local {
		k.localQ.QueueBroadcast(b)
	} else {
		k.forwardedQ.QueueBroadcast(b)
	}
}

// applyRemote merges one key received from a peer, then tells the watchers
// and passes the change on if it taught us something.
func (k *KV) applyRemote(pair *dskitml.KeyValuePair) error {
	c := k.store.codec(pair.Codec)
	if c == nil {
		return fmt.Errorf("key %q uses codec %q, which no client of this process registered", pair.Key, pair.Codec)
	}
	decoded, err := c.Decode(pair.Value)
	if err != nil {
		return fmt.Errorf("decoding key %q: %w", pair.Key, err)
	}
	value, ok := decoded.(dskitml.Mergeable)
	if !ok || value == nil {
		return fmt.Errorf("key %q decoded to %T, which is not a memberlist.Mergeable", pair.Key, decoded)
	}
	res, err := k.merge(pair.Key, value, false, 0, pair.Codec, pair.Deleted, fromMillis(pair.UpdateTimeMillis))
	if err != nil {
		return fmt.Errorf("merging key %q: %w", pair.Key, err)
	}
	if res.version > 0 {
		k.watchers.notify(pair.Key, k.metrics)
		k.broadcast(pair.Key, res, c, false)
	}
	return nil
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
