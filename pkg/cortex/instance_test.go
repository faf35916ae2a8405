package cortex

import (
	"flag"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
)

func TestInstanceIDDefaults(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no hostname:", err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want [3]string // ingester, store-gateway, compactor
	}{
		{"loopback gRPC listener", []string{"-server.grpc-listen-address=127.0.0.1", "-server.grpc-listen-port=9195"},
			[3]string{host + "-9195", host + "-9195", host + "-9195"}},
		{"localhost", []string{"-server.grpc-listen-address=localhost", "-server.grpc-listen-port=9196"},
			[3]string{host + "-9196", host + "-9196", host + "-9196"}},
		{"every interface", []string{"-server.grpc-listen-address=", "-server.grpc-listen-port=9195"},
			[3]string{host, host, host}},
		{"a routable address", []string{"-server.grpc-listen-address=10.1.2.3", "-server.grpc-listen-port=9195"},
			[3]string{host, host, host}},
		{"explicit IDs win", []string{"-server.grpc-listen-address=127.0.0.1", "-server.grpc-listen-port=9195",
			"-ingester.lifecycler.ID=ingester-a", "-compactor.ring.instance-id=compactor-a"},
			[3]string{"ingester-a", host + "-9195", "compactor-a"}},
		{"explicit ID equal to the hostname wins", []string{"-server.grpc-listen-address=127.0.0.1", "-server.grpc-listen-port=9195",
			"-ingester.lifecycler.ID=" + host},
			[3]string{host, host + "-9195", host + "-9195"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadConfig(t, tc.args...).finalize(slog.New(slog.DiscardHandler))
			got := [3]string{cfg.Ingester.LifecyclerConfig.ID, cfg.StoreGateway.ShardingRing.InstanceID, cfg.Compactor.ShardingRing.InstanceID}
			if got != tc.want {
				t.Errorf("instance IDs (ingester, store-gateway, compactor) = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestInstanceIDFlagsDescribeTheirDefault(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	for _, name := range instanceIDFlags {
		fl := fs.Lookup(name)
		if fl == nil {
			t.Fatalf("no flag -%s", name)
		}
		if fl.DefValue != "" || !strings.Contains(fl.Usage, "<hostname>-<gRPC listen port> when -server.grpc-listen-address is a loopback address") {
			t.Errorf("-%s: default %q, usage %q", name, fl.DefValue, fl.Usage)
		}
	}
}

func TestLogLinesNameTheTargetsRingInstance(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no hostname:", err)
	}
	loopback := []string{"-server.grpc-listen-address=127.0.0.1", "-server.grpc-listen-port=9195"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a ruler names its ruler ring ID", []string{"-target=ruler", "-ruler.ring.instance-id=ruler-1", "-ingester.lifecycler.ID=unused"}, "ruler-1"},
		{"an alertmanager its sharding ring ID", []string{"-target=alertmanager", "-alertmanager.sharding-ring.instance-id=am-2"}, "am-2"},
		{"a store-gateway its ring ID", []string{"-target=store-gateway", "-store-gateway.sharding-ring.instance-id=sg-0"}, "sg-0"},
		{"a distributor its ring ID", []string{"-target=distributor", "-distributor.ring.instance-id=d-0"}, "d-0"},
		{"all names the ingester", []string{"-target=all", "-ingester.lifecycler.ID=ingester-7", "-ruler.ring.instance-id=ruler-7"}, "ingester-7"},
		{"a querier joins no ring: the process default", []string{"-target=querier"}, host + "-9195"},
		{"a ruler on loopback without an ID: host and port", []string{"-target=ruler"}, host + "-9195"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadConfig(t, append(loopback, tc.args...)...).finalize(slog.New(slog.DiscardHandler))
			if got := cfg.logInstance(); got != tc.want {
				t.Errorf("instance in log lines = %q, want %q", got, tc.want)
			}
		})
	}
}
