package distributor

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/shardring"
)

// The distributor ring's name and its key in the KV store, Cortex's.
const (
	RingName = "distributor"
	RingKey  = "distributor"
)

// RingConfig is the distributor ring (-distributor.ring.*): with the global
// ingestion rate strategy every distributor joins it, and divides the
// tenants' rate limits by the healthy distributors it finds there.
type RingConfig struct {
	KVStore          kv.Config     `yaml:"kvstore"`
	HeartbeatPeriod  time.Duration `yaml:"heartbeat_period"`
	HeartbeatTimeout time.Duration `yaml:"heartbeat_timeout"`
	// DetailedMetricsEnabled exports each distributor's tokens and share
	// of the ring.
	DetailedMetricsEnabled bool `yaml:"detailed_metrics_enabled"`

	InstanceID             string   `yaml:"instance_id"`
	InstanceInterfaceNames []string `yaml:"instance_interface_names"`
	InstancePort           int      `yaml:"instance_port"`
	InstanceAddr           string   `yaml:"instance_addr"`
}

// RegisterFlags registers the -distributor.ring.* flags. The KV store
// defaults to inmemory, as every ring's here: one process needs no KV
// service (Cortex defaults to consul).
func (c *RingConfig) RegisterFlags(f *flag.FlagSet) {
	c.KVStore.Store = "inmemory"
	c.KVStore.RegisterFlagsWithPrefix("distributor.ring.", "collectors/", f)
	f.DurationVar(&c.HeartbeatPeriod, "distributor.ring.heartbeat-period", 5*time.Second, "Period at which to heartbeat to the distributor ring. 0 disables heartbeats altogether.")
	f.DurationVar(&c.HeartbeatTimeout, "distributor.ring.heartbeat-timeout", time.Minute, "The heartbeat timeout after which a distributor is considered unhealthy within the ring, and no longer counted in the global ingestion rate strategy's division. 0 = never (timeout disabled).")
	f.BoolVar(&c.DetailedMetricsEnabled, "distributor.ring.detailed-metrics-enabled", true, "Export each distributor's token count (cortex_ring_tokens_owned) and share of the ring (cortex_ring_member_ownership_percent), with name=\"distributor\". Disabling them removes two series per distributor.")
	c.InstanceInterfaceNames = []string{"eth0", "en0"}
	f.Var((*flagext.StringSliceCSV)(&c.InstanceInterfaceNames), "distributor.ring.instance-interface-names", "Name of network interface to read address from.")
	f.StringVar(&c.InstanceID, "distributor.ring.instance-id", "", "Instance ID to register in the distributor ring. Empty: the hostname.")
	f.StringVar(&c.InstanceAddr, "distributor.ring.instance-addr", "", "IP address to advertise in the distributor ring. Empty: read from -distributor.ring.instance-interface-names.")
	f.IntVar(&c.InstancePort, "distributor.ring.instance-port", 0, "Port to advertise in the distributor ring. 0: the gRPC listen port (-server.grpc-listen-port).")
}

// Validate checks the settings, naming the flag at fault.
func (c *RingConfig) Validate() error {
	if c.HeartbeatPeriod < 0 || c.HeartbeatTimeout < 0 {
		return fmt.Errorf("-distributor.ring.heartbeat-period and -distributor.ring.heartbeat-timeout must not be negative, got %s and %s", c.HeartbeatPeriod, c.HeartbeatTimeout)
	}
	return nil
}

// shardringConfig is the ring as the shared ring membership needs it: one
// token per distributor, as in Cortex, and no replication.
func (c *RingConfig) shardringConfig() shardring.Config {
	return shardring.Config{
		KVStore:                c.KVStore,
		HeartbeatPeriod:        c.HeartbeatPeriod,
		HeartbeatTimeout:       c.HeartbeatTimeout,
		ReplicationFactor:      1,
		InstanceID:             c.InstanceID,
		InstanceInterfaceNames: c.InstanceInterfaceNames,
		InstanceAddr:           c.InstanceAddr,
		InstancePort:           c.InstancePort,
		NumTokens:              1,
		DetailedMetricsEnabled: c.DetailedMetricsEnabled,
		Prefix:                 "distributor.ring",
	}
}

// healthyRefreshPeriod is how often the count of healthy distributors is
// taken from the ring client, rather than on every push.
const healthyRefreshPeriod = time.Second

// Ring is this distributor's membership of the distributor ring, and the
// count of healthy distributors the global ingestion rate strategy divides
// by.
type Ring struct {
	services.Service
	member  *shardring.Member
	healthy atomic.Int64
}

// NewRing prepares the membership of the distributor advertising host:port
// (unless -distributor.ring.instance-addr and -instance-port say otherwise)
// in the ring stored in store.
func NewRing(cfg RingConfig, store kv.Client, host string, port int, logger *slog.Logger, reg prometheus.Registerer) (*Ring, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	member, err := shardring.NewMember(cfg.shardringConfig(), RingName, RingKey, store, host, port, ring.ACTIVE, logger, reg)
	if err != nil {
		return nil, err
	}
	r := &Ring{member: member}
	r.Service = services.NewBasicService(r.starting, r.running, r.stopping)
	return r, nil
}

func (r *Ring) starting(ctx context.Context) error {
	if err := r.member.Start(ctx); err != nil {
		return fmt.Errorf("distributor ring: %w", err)
	}
	r.refresh()
	return nil
}

func (r *Ring) running(ctx context.Context) error {
	t := time.NewTicker(healthyRefreshPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.refresh()
		}
	}
}

func (r *Ring) stopping(error) error { return r.member.Stop() }

// refresh counts the ACTIVE distributors whose heartbeat is within
// -distributor.ring.heartbeat-timeout.
func (r *Ring) refresh() {
	rs, err := r.member.Ring().GetAllHealthy(ring.Write)
	if err != nil {
		r.healthy.Store(0)
		return
	}
	r.healthy.Store(int64(len(rs.Instances)))
}

// HealthyInstancesCount is the number of healthy distributors in the ring,
// this one included once it registered; 0 before.
func (r *Ring) HealthyInstancesCount() int { return int(r.healthy.Load()) }

// ServeHTTP serves the ring's status page.
func (r *Ring) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.member.ServeHTTP(w, req) }
