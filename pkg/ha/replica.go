// Package ha elects one replica of each HA pair (or group) of Prometheus
// servers per tenant and cluster, as Cortex's HA tracker does: the
// distributor stores the samples of the elected replica and drops the
// others', and elects another replica once the elected one has been silent
// for the failover timeout.
//
// The elected replicas live in a KV store (memberlist, consul or etcd), so
// that every distributor agrees on them, under the key "<tenant>/<cluster>".
// Values are ReplicaDesc encoded as JSON (Codec): dskit's KV codec
// interface takes any encoding, and ReplicaDesc implements
// memberlist.Mergeable (the later ReceivedAt wins), so the gossip store
// merges the copies of every distributor.
package ha

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/grafana/dskit/kv/memberlist"
)

// ReplicaDesc is a cluster's elected replica.
type ReplicaDesc struct {
	Replica string `json:"replica"`
	// ReceivedAt is when a distributor last wrote the election: the
	// elected replica's last sample seen, to -distributor.ha-tracker.update-timeout.
	// Milliseconds since the Unix epoch.
	ReceivedAt int64 `json:"received_at"`
	// DeletedAt, when not 0, marks an election the cleanup found stale
	// (milliseconds since the Unix epoch); the key is deleted later.
	DeletedAt int64 `json:"deleted_at,omitempty"`
}

var _ memberlist.Mergeable = (*ReplicaDesc)(nil)

// newer reports whether o wins over r: the later ReceivedAt, then the
// later DeletedAt, then the greater replica name, so that every merge
// order ends at the same value.
func (r *ReplicaDesc) newer(o *ReplicaDesc) bool {
	if o.ReceivedAt != r.ReceivedAt {
		return o.ReceivedAt > r.ReceivedAt
	}
	if o.DeletedAt != r.DeletedAt {
		return o.DeletedAt > r.DeletedAt
	}
	return o.Replica > r.Replica
}

// Merge keeps the newer of r and other.
func (r *ReplicaDesc) Merge(other memberlist.Mergeable, _ bool) (memberlist.Mergeable, error) {
	if other == nil {
		return nil, nil
	}
	o, ok := other.(*ReplicaDesc)
	if !ok {
		return nil, fmt.Errorf("ha: cannot merge %T into a ReplicaDesc", other)
	}
	if o == nil || !r.newer(o) {
		return nil, nil
	}
	*r = *o
	return r.Clone(), nil
}

// MergeContent names the value's content: its replica.
func (r *ReplicaDesc) MergeContent() []string { return []string{r.Replica} }

// RemoveTombstones does nothing: a deleted election is a deleted key.
func (r *ReplicaDesc) RemoveTombstones(time.Time) (total, removed int) { return 0, 0 }

// Clone returns a copy of r.
func (r *ReplicaDesc) Clone() memberlist.Mergeable {
	c := *r
	return &c
}

// Codec encodes ReplicaDesc as JSON for the KV stores.
type Codec struct{}

// CodecID is the codec's name in the gossip messages.
func (Codec) CodecID() string { return "haReplicaDesc" }

// Decode returns a *ReplicaDesc.
func (Codec) Decode(b []byte) (any, error) {
	var r ReplicaDesc
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding HA replica: %w", err)
	}
	return &r, nil
}

// Encode encodes a *ReplicaDesc.
func (Codec) Encode(v any) ([]byte, error) {
	r, ok := v.(*ReplicaDesc)
	if !ok {
		return nil, fmt.Errorf("encoding HA replica: want *ha.ReplicaDesc, got %T", v)
	}
	return json.Marshal(r)
}
