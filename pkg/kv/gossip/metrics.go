package gossip

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// kvMetrics follow dskit's memberlist KV metrics, under cortex_memberlist_client_.
type kvMetrics struct {
	casAttempts        prometheus.Counter
	casFailures        prometheus.Counter
	casSuccesses       prometheus.Counter
	messagesReceived   prometheus.Counter
	messagesInvalid    prometheus.Counter
	broadcastsQueued   prometheus.Counter
	broadcastsDropped  prometheus.Counter
	statePushes        prometheus.Counter
	statePulls         prometheus.Counter
	removedTombstones  prometheus.Counter
	watchNotifications prometheus.Counter
}

func newKVMetrics(reg prometheus.Registerer, members, keys func() float64) *kvMetrics {
	f := promauto.With(reg)
	counter := func(name, help string) prometheus.Counter {
		return f.NewCounter(prometheus.CounterOpts{Name: "cortex_memberlist_client_" + name, Help: help})
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cortex_memberlist_client_cluster_members_count",
		Help: "Members of the gossip cluster this node sees alive, itself included.",
	}, members)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cortex_memberlist_client_kv_store_count",
		Help: "Keys in the gossip KV store.",
	}, keys)
	return &kvMetrics{
		casAttempts:        counter("cas_attempt_total", "CAS attempts, retries included."),
		casFailures:        counter("cas_failure_total", "CAS operations that failed after their retries."),
		casSuccesses:       counter("cas_success_total", "CAS operations that changed a value."),
		messagesReceived:   counter("messages_received_total", "Value updates received from peers."),
		messagesInvalid:    counter("received_broadcasts_invalid_total", "Updates from peers that could not be decoded or merged."),
		broadcastsQueued:   counter("messages_to_broadcast_total", "Value changes queued for broadcast to peers (local and forwarded)."),
		broadcastsDropped:  counter("messages_to_broadcast_dropped_total", "Value changes that could not be encoded for broadcast."),
		statePushes:        counter("state_pushes_total", "Full-state exchanges where this node sent its state."),
		statePulls:         counter("state_pulls_total", "Full-state exchanges where this node merged a peer's state."),
		removedTombstones:  counter("removed_tombstones_total", "Tombstones (e.g. LEFT ingesters) removed after -memberlist.left-ingesters-timeout."),
		watchNotifications: counter("watch_notifications_total", "Key changes signalled to watchers."),
	}
}

// transportMetrics count a gossip transport's traffic, under
// cortex_memberlist_tcp_transport_ for the KV's.
type transportMetrics struct {
	packetsIn, packetsOut         prometheus.Counter
	packetBytesIn, packetBytesOut prometheus.Counter
	packetsDropped, packetErrors  prometheus.Counter
	streamsIn, streamsOut         prometheus.Counter
	streamErrors                  prometheus.Counter
	connectionsRefused            prometheus.Counter
}

// newTransportMetrics registers the transport's counters under prefix
// ("cortex_memberlist_tcp_transport_" for the KV); limit names the
// connection limit in the rejected connections' help.
func newTransportMetrics(reg prometheus.Registerer, prefix, limit string) *transportMetrics {
	f := promauto.With(reg)
	counter := func(name, help string) prometheus.Counter {
		return f.NewCounter(prometheus.CounterOpts{Name: prefix + name, Help: help})
	}
	return &transportMetrics{
		packetsIn:          counter("packets_received_total", "Gossip packets received."),
		packetsOut:         counter("packets_sent_total", "Gossip packets sent."),
		packetBytesIn:      counter("packets_received_bytes_total", "Bytes of gossip packets received."),
		packetBytesOut:     counter("packets_sent_bytes_total", "Bytes of gossip packets sent."),
		packetsDropped:     counter("packets_dropped_total", "Gossip packets dropped because the peer's queue was full."),
		packetErrors:       counter("packets_errors_total", "Gossip packets that could not be sent or read, dial failures included."),
		streamsIn:          counter("incoming_streams_total", "Gossip streams (push/pull, join) accepted."),
		streamsOut:         counter("outgoing_streams_total", "Gossip streams opened."),
		streamErrors:       counter("outgoing_stream_errors_total", "Gossip streams that could not be opened."),
		connectionsRefused: counter("rejected_connections_total", "Inbound gossip connections closed at once because "+limit+" of open connections was reached."),
	}
}
