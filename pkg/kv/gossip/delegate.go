package gossip

import (
	"encoding/binary"
	"fmt"
	"slices"

	dskitml "github.com/grafana/dskit/kv/memberlist"
	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's callbacks; it is a separate type so that
// they stay out of KV's API.
type delegate struct{ k *KV }

var _ memberlist.Delegate = delegate{}

func (delegate) NodeMeta(int) []byte { return nil }

// NotifyMsg receives one change broadcast by a peer.
func (d delegate) NotifyMsg(msg []byte) {
	k := d.k
	if !k.ready.Load() {
		return
	}
	k.metrics.messagesReceived.Inc()
	var pair dskitml.KeyValuePair
	if err := pair.Unmarshal(msg); err != nil {
		k.metrics.messagesInvalid.Inc()
		k.logger.Warn("dropping an undecodable gossip message", "size", len(msg), "err", err)
		return
	}
	if err := k.applyRemote(&pair); err != nil {
		k.metrics.messagesInvalid.Inc()
		k.logger.Warn("dropping a gossip message", "err", err)
	}
}

// GetBroadcasts hands memberlist the queued changes, ours first.
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	k := d.k
	if !k.ready.Load() {
		return nil
	}
	msgs := k.localQ.GetBroadcasts(overhead, limit)
	for _, m := range msgs {
		limit -= overhead + len(m)
	}
	if limit > 0 {
		msgs = append(msgs, k.forwardedQ.GetBroadcasts(overhead, limit)...)
	}
	return msgs
}

// LocalState is our full state, sent on join and push/pull: each key as a
// length-prefixed KeyValuePair.
func (d delegate) LocalState(bool) []byte {
	k := d.k
	if !k.ready.Load() {
		return nil
	}
	k.metrics.statePushes.Inc()
	s := &k.store
	s.mu.Lock()
	defer s.mu.Unlock()
	var buf []byte
	for key, e := range s.entries {
		c := s.codecs[e.codecID]
		if e.value == nil || c == nil {
			continue
		}
		data, err := c.Encode(e.value)
		if err != nil {
			k.logger.Error("encoding a key for push/pull failed", "key", key, "err", err)
			continue
		}
		pair := dskitml.KeyValuePair{Key: key, Value: data, Codec: e.codecID, Deleted: e.deleted, UpdateTimeMillis: millis(e.updated)}
		pb, err := pair.Marshal()
		if err != nil {
			k.logger.Error("encoding a key for push/pull failed", "key", key, "err", err)
			continue
		}
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(pb)))
		buf = append(buf, pb...)
	}
	return buf
}

// MergeRemoteState merges a peer's full state.
func (d delegate) MergeRemoteState(buf []byte, _ bool) {
	k := d.k
	if !k.ready.Load() {
		return
	}
	k.metrics.statePulls.Inc()
	for len(buf) > 0 {
		if len(buf) < 4 {
			k.logger.Warn("dropping the rest of a peer's gossip state: truncated", "bytes", len(buf))
			return
		}
		n := int(binary.BigEndian.Uint32(buf))
		buf = buf[4:]
		if n > len(buf) {
			k.logger.Warn("dropping the rest of a peer's gossip state: truncated", "want", n, "have", len(buf))
			return
		}
		var pair dskitml.KeyValuePair
		if err := pair.Unmarshal(buf[:n]); err != nil {
			k.metrics.messagesInvalid.Inc()
			k.logger.Warn("dropping the rest of a peer's gossip state", "err", err)
			return
		}
		buf = buf[n:]
		if err := k.applyRemote(&pair); err != nil {
			k.metrics.messagesInvalid.Inc()
			k.logger.Warn("skipping a key of a peer's gossip state", "err", err)
		}
	}
}

// change is one queued broadcast. A newer change of the same key that
// covers everything an older one says replaces it in the queue.
type change struct {
	key     string
	content []string // what the change touches (ring: ingester IDs)
	version uint
	msg     []byte
}

var _ memberlist.Broadcast = change{}

func (c change) Invalidates(other memberlist.Broadcast) bool {
	old, ok := other.(change)
	if !ok || old.key != c.key || c.version < old.version {
		return false
	}
	for _, name := range old.content {
		if !slices.Contains(c.content, name) {
			return false
		}
	}
	return true
}

func (c change) Message() []byte { return c.msg }
func (c change) Finished()       {}

func (c change) String() string { return fmt.Sprintf("change of %q v%d", c.key, c.version) }
