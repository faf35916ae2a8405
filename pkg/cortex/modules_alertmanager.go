package cortex

import (
	"context"
	"errors"
	"fmt"

	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/alertmanager"
	"github.com/cortex-tls/cortex/pkg/alertmanager/alertstore"
	"github.com/cortex-tls/cortex/pkg/alertmanager/amcluster"
	cortexkv "github.com/cortex-tls/cortex/pkg/kv"
	"github.com/cortex-tls/cortex/pkg/shardring"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// initAlertmanager builds the per-tenant Alertmanagers polling the
// alertmanager storage (-alertmanager-storage.backend; the configs service
// link takes either spelling of its flags, -alertmanager.configs.* or
// -alertmanager-storage.configs.*) and mounts the v2 API. With neither a
// configs URL nor a backend it polls a filesystem bucket in
// ./alertmanager, created only by the first stored configuration, so it is
// safe in -target=all. With
// -alertmanager.sharding-enabled it joins the alertmanager ring and serves
// the alertmanager gRPC service to the other members; without it, and with
// -alertmanager.cluster.listen-address, it joins Alertmanager's gossip
// cluster over mutual TLS.
func (t *Cortex) initAlertmanager() (services.Service, error) {
	if err := t.Cfg.Alertmanager.Validate(); err != nil {
		return nil, err
	}
	st := t.Cfg.AlertmanagerStorage
	if err := st.Resolve(t.Cfg.Alertmanager.Legacy()); err != nil {
		return nil, err
	}
	opts := []alertmanager.Option{alertmanager.WithLimits(t.Overrides)}
	var member *shardring.Member
	if t.Cfg.Alertmanager.Sharding.ShardingEnabled {
		var err error
		member, err = t.alertmanagerMember()
		if err != nil {
			return nil, err
		}
		clientTLS, err := tlsconfig.NewClient(alertmanager.ClientTLSPrefix, t.Cfg.Alertmanager.Sharding.AlertmanagerClient.TLS, t.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, alertmanager.WithSharding(member, alertmanager.NewClientPool(t.Cfg.Alertmanager.Sharding.AlertmanagerClient, clientTLS)))
	}
	store, err := alertstore.NewStore(context.Background(), st, t.TLS, t.Logger, t.Registry)
	if err != nil {
		return nil, err
	}
	clusterCfg := t.Cfg.Alertmanager.Cluster
	var peer *amcluster.Peer
	switch {
	case clusterCfg.Enabled(t.Cfg.Alertmanager.Sharding.ShardingEnabled):
		if peer, err = alertmanager.NewClusterPeer(clusterCfg, t.TLS, t.Logger, t.Registry); err != nil {
			return nil, err
		}
		opts = append(opts, alertmanager.WithCluster(peer))
	case clusterCfg.ListenAddr != "":
		// As in Cortex, sharding replaces the gossip cluster.
		t.Logger.Warn("-alertmanager.cluster.* flags are ignored with -alertmanager.sharding-enabled: the tenants' replicas exchange their state over the alertmanager gRPC service", "listen_address", clusterCfg.ListenAddr)
	}
	am, err := alertmanager.New(t.Cfg.Alertmanager, store, t.Logger, t.Registry, opts...)
	if err != nil {
		if peer != nil {
			_ = peer.Leave(0)
		}
		return nil, err
	}
	if member != nil {
		am.RegisterGRPC(t.Server.GRPC)
		t.API.RegisterAlertmanagerRing(member)
	}
	t.API.RegisterAlertmanager(am)
	t.API.RegisterAlertmanagerAdmin(am)
	if st.UsersScanner.Strategy != users.StrategyUserIndex {
		return am, nil
	}
	// The user index of the alertmanager storage, written by the
	// alertmanager owning its name in the ring (or the only one).
	indexed, ok := store.(interface{ UserIndex() *users.IndexUpdater })
	if !ok {
		return am, nil // configdb and local list their tenants themselves
	}
	owns := func() bool { return member == nil || member.FirstOwnerOf(users.IndexFilename, alertmanager.RingOp) }
	index := users.IndexService(indexed.UserIndex, st.UsersScanner.UpdateInterval, owns, t.Logger.With("component", "alertmanager-storage"))
	return withCompanion(am, index), nil
}

// withCompanion runs companion beside main: started after it, stopped
// before it, and a failure of either fails the module.
func withCompanion(main, companion services.Service) services.Service {
	starting := func(ctx context.Context) error {
		if err := services.StartAndAwaitRunning(ctx, main); err != nil {
			return err
		}
		if err := services.StartAndAwaitRunning(ctx, companion); err != nil {
			return errors.Join(err, services.StopAndAwaitTerminated(context.Background(), main))
		}
		return nil
	}
	running := func(ctx context.Context) error {
		failed := make(chan error, 2) // never blocks a watcher
		for _, s := range []services.Service{main, companion} {
			go func() {
				if s.AwaitTerminated(ctx) != nil && s.State() == services.Failed {
					failed <- s.FailureCase()
				}
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return err
		}
	}
	stopping := func(error) error {
		return errors.Join(services.StopAndAwaitTerminated(context.Background(), companion), services.StopAndAwaitTerminated(context.Background(), main))
	}
	return services.NewBasicService(starting, running, stopping)
}

// alertmanagerMember is this process's membership of the alertmanager
// ring, advertising its gRPC server.
func (t *Cortex) alertmanagerMember() (*shardring.Member, error) {
	cfg := t.Cfg.Alertmanager.Sharding.ShardingRing
	if cfg.KVStore.Store == "memberlist" && t.gossip == nil {
		return nil, fmt.Errorf("-alertmanager.sharding-ring.store=memberlist: the gossip KV (-memberlist.*) is not running in this process")
	}
	reg := prometheus.WrapRegistererWithPrefix("cortex_", t.Registry)
	kvStore, err := cortexkv.NewClient(cfg.KVStore, ring.GetCodec(), t.gossip, "alertmanager-ring", reg, t.Logger)
	if err != nil {
		return nil, fmt.Errorf("alertmanager ring: -alertmanager.sharding-ring.store=%s: %w", cfg.KVStore.Store, err)
	}
	host, port := t.advertisedGRPC()
	member, err := shardring.NewMember(cfg, alertmanager.RingName, alertmanager.RingKey, kvStore, host, port, ring.ACTIVE, t.Logger.With("component", Alertmanager), reg)
	if err != nil {
		return nil, fmt.Errorf("alertmanager ring: %w", err)
	}
	return member, nil
}
