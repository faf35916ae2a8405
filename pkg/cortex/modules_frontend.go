package cortex

import (
	"context"
	"errors"
	"net"
	"strconv"

	"github.com/grafana/dskit/services"

	"github.com/cortex-tls/cortex/pkg/frontend"
	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
	"github.com/cortex-tls/cortex/pkg/querier"
	"github.com/cortex-tls/cortex/pkg/querier/worker"
	"github.com/cortex-tls/cortex/pkg/scheduler/schedulerpb"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// initQueryFrontend serves the Prometheus API from the frontend's queue
// and the cortex.Frontend gRPC service the querier workers pull from.
func (t *Cortex) initQueryFrontend() (services.Service, error) {
	memcachedTLS, err := tlsconfig.NewClient(frontend.MemcachedTLSPrefix, t.Cfg.Frontend.Memcached.TLS, t.TLS)
	if err != nil {
		return nil, err
	}
	redisTLS, err := tlsconfig.NewClient(frontend.RedisTLSPrefix, t.Cfg.Frontend.Redis.TLS, t.TLS)
	if err != nil {
		return nil, err
	}
	schedulerOpts, err := t.frontendSchedulerOptions()
	if err != nil {
		return nil, err
	}
	if t.Cfg.Frontend.DownstreamURL != "" {
		// The downstream stands where the queriers would: the frontend's
		// own client link settings fit it (see pkg/frontend/downstream.go).
		downstreamTLS, err := tlsconfig.NewClient(frontend.SchedulerTLSPrefix, t.Cfg.Frontend.Scheduler.GRPCClientConfig.TLS, t.TLS)
		if err != nil {
			return nil, err
		}
		schedulerOpts = append(schedulerOpts, frontend.WithDownstream(downstreamTLS))
	}
	schedulerOpts = append(schedulerOpts, frontend.WithRedisTLS(redisTLS))
	schedulerOpts = append(schedulerOpts, frontend.WithQuerierCodec(t.Cfg.API.QuerierDefaultCodec, t.Cfg.Querier.ResponseCompression, t.Cfg.Server.GRPCMaxRecvMsgSize))
	f, err := frontend.New(t.Cfg.Frontend, memcachedTLS, t.Logger, t.Registry,
		append([]frontend.Option{frontend.WithLimits(t.Overrides), frontend.WithQueryTimeout(t.Cfg.Querier.Timeout), frontend.WithLookbackDelta(t.Cfg.Querier.LookbackDelta), frontend.WithParserOptions(t.Cfg.Querier.ParserOptions()), frontend.WithPerStepStats(t.Cfg.Querier.EnablePerStepStats), frontend.WithTenantFederation(t.Cfg.TenantFederation)}, schedulerOpts...)...)
	if err != nil {
		return nil, err
	}
	frontendpb.RegisterFrontendServer(t.Server.GRPC, f)
	schedulerpb.RegisterFrontendForQuerierServer(t.Server.GRPC, f)
	// Rulers' queries (-ruler.frontend-address), as HTTP over gRPC.
	f.RegisterHTTPOverGRPC(t.Server.GRPC)
	t.Server.TrackHealth(frontendpb.ServiceName, f)
	if t.Cfg.Worker.FrontendAddress == "" && t.Cfg.runs(Querier) && t.Cfg.Server.GRPCTLS.CertPath != "" &&
		!t.Cfg.Worker.GRPCClientConfig.TLS.TLSOn() && !t.ingesterTLSOn() {
		// The in-process querier's worker would dial this TLS server in
		// plaintext. Say so, but keep /ready as it is without the frontend.
		t.Logger.Warn("the gRPC server requires TLS but no -querier.frontend-client.tls-* (or -ingester.client.tls-*, or -server.grpc-tls-ca-path) flag is set: this process's querier cannot pull queries from its query-frontend, so queries will fail; /ready does not wait for it")
	} else {
		t.readyChecks = append(t.readyChecks, f.CheckReady)
	}
	t.API.RegisterPrometheusAPI(QueryFrontend, t.prometheusPrefixes(), f.Handler())
	return f, nil
}

// withQuerierWorker returns the querier's service, running a worker that
// pulls queries from the query-frontend(s) when -querier.frontend-address
// is set, or from this process's own frontend under -target=all.
func (t *Cortex) withQuerierWorker(q *querier.Querier) (services.Service, error) {
	cfg := t.Cfg.Worker
	tls, err := tlsconfig.NewClient(worker.TLSPrefix, cfg.GRPCClientConfig.TLS, t.TLS)
	if err != nil {
		return nil, err
	}
	if cfg.FrontendAddress == "" && cfg.SchedulerAddress == "" {
		if !t.Cfg.runs(QueryFrontend) {
			return q, nil
		}
		// The frontend is in this process: dial our own gRPC server.
		host := t.Cfg.Server.GRPCListenAddress
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		cfg.FrontendAddress = net.JoinHostPort(host, strconv.Itoa(t.Server.GRPCAddr().(*net.TCPAddr).Port))
		if tls == nil && t.ingesterTLS != nil {
			// Both links dial this same server: without -querier.frontend-client.tls-*
			// flags, the -ingester.client.tls-* ones fit it.
			t.Logger.Info("-target=all: the querier worker dials this process's gRPC server with the ingester client's TLS settings, as no -querier.frontend-client.tls-* flag is set")
			tls = t.ingesterTLS
		}
	}
	w, err := worker.New(cfg, tls, q.Handler(), t.Logger, t.Registry)
	if err != nil {
		return nil, err
	}
	watcher := services.NewFailureWatcher()
	watcher.WatchService(q)
	watcher.WatchService(w)
	return services.NewBasicService(
		func(ctx context.Context) error {
			if err := services.StartAndAwaitRunning(ctx, q); err != nil {
				return err
			}
			return services.StartAndAwaitRunning(ctx, w)
		},
		func(ctx context.Context) error {
			select {
			case <-ctx.Done():
				return nil
			case err := <-watcher.Chan():
				return err
			}
		},
		func(error) error {
			// Stop pulling queries before the querier goes away.
			errW := services.StopAndAwaitTerminated(context.Background(), w)
			errQ := services.StopAndAwaitTerminated(context.Background(), q)
			watcher.Close()
			return errors.Join(ignoreNotRunning(errW), ignoreNotRunning(errQ))
		},
	), nil
}

func ignoreNotRunning(err error) error {
	if err != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// ingesterTLSOn reports whether the ingester client, as in effect, uses TLS.
func (t *Cortex) ingesterTLSOn() bool {
	cfg, _ := t.ingesterClientTLS()
	return cfg.TLSOn()
}
