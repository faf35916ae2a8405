package cortex

import (
	"flag"
	"log/slog"
	"net"
	"os"
	"strconv"
)

// The instance ID flags of the rings a process may join. Their default is
// the process's own (defaultInstanceID), not dskit's plain hostname.
var instanceIDFlags = []string{
	"ingester.lifecycler.ID",
	"store-gateway.sharding-ring.instance-id",
	"compactor.ring.instance-id",
	"ruler.ring.instance-id",
	"alertmanager.sharding-ring.instance-id",
	"distributor.ring.instance-id",
}

const instanceIDUsage = "Instance ID to register in the ring. Empty: the hostname, or <hostname>-<gRPC listen port> when -server.grpc-listen-address is a loopback address, so that processes sharing a host register apart."

// clearInstanceIDDefaults empties the instance ID flags' defaults, filled
// in by finalize once every flag is read.
func (c *Config) clearInstanceIDDefaults(f *flag.FlagSet) {
	c.Ingester.LifecyclerConfig.ID = ""
	c.StoreGateway.ShardingRing.InstanceID = ""
	c.Compactor.ShardingRing.InstanceID = ""
	c.Ruler.Sharding.Ring.InstanceID = ""
	c.Alertmanager.Sharding.ShardingRing.InstanceID = ""
	c.Distributor.DistributorRing.InstanceID = ""
	for _, name := range instanceIDFlags {
		if fl := f.Lookup(name); fl != nil {
			fl.DefValue = ""
			fl.Usage = instanceIDUsage
		}
	}
}

// defaultInstanceID is the ID the process registers in its rings when no
// flag names one: the hostname, as in Cortex, or, when the gRPC server
// listens on loopback, where several processes of a cluster share the
// host, the hostname and the gRPC port.
func (c *Config) defaultInstanceID(logger *slog.Logger) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		logger.Warn("the hostname is unknown: instance ID from \"cortex\"; set -ingester.lifecycler.ID", "err", err)
		host = "cortex"
	}
	if isLoopback(c.Server.GRPCListenAddress) && c.Server.GRPCListenPort != 0 {
		return host + "-" + strconv.Itoa(c.Server.GRPCListenPort)
	}
	return host
}

// isLoopback reports whether a listen address is a loopback one: an IP in
// 127.0.0.0/8 or ::1, or localhost.
func isLoopback(addr string) bool {
	if addr == "localhost" {
		return true
	}
	ip := net.ParseIP(addr)
	return ip != nil && ip.IsLoopback()
}

// fillInstanceIDs gives the rings' instance IDs that no flag set the
// process's default.
func (c *Config) fillInstanceIDs(logger *slog.Logger) {
	ids := []*string{&c.Ingester.LifecyclerConfig.ID, &c.StoreGateway.ShardingRing.InstanceID, &c.Compactor.ShardingRing.InstanceID,
		&c.Ruler.Sharding.Ring.InstanceID, &c.Alertmanager.Sharding.ShardingRing.InstanceID, &c.Distributor.DistributorRing.InstanceID}
	def := ""
	for _, id := range ids {
		if *id != "" {
			continue
		}
		if def == "" {
			def = c.defaultInstanceID(logger)
		}
		*id = def
	}
}

// logInstance names the process in every log line: the instance ID of the
// ring its target registers in (the ingester's for targets that join none),
// so the logs of a cluster's processes, gathered together, tell them apart.
func (c *Config) logInstance() string {
	switch {
	case c.runs(Ingester):
		return c.Ingester.LifecyclerConfig.ID
	case c.runs(StoreGateway):
		return c.StoreGateway.ShardingRing.InstanceID
	case c.runs(Compactor):
		return c.Compactor.ShardingRing.InstanceID
	case c.runs(Ruler):
		return c.Ruler.Sharding.Ring.InstanceID
	case c.runs(Alertmanager):
		return c.Alertmanager.Sharding.ShardingRing.InstanceID
	case c.runs(Distributor):
		return c.Distributor.DistributorRing.InstanceID
	}
	return c.Ingester.LifecyclerConfig.ID
}
