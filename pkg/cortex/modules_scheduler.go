package cortex

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/auth"
	"github.com/cortex-tls/cortex/pkg/frontend"
	"github.com/cortex-tls/cortex/pkg/scheduler"
	"github.com/cortex-tls/cortex/pkg/scheduler/schedulerpb"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// QueryScheduler is the query-scheduler module, a -target of its own that
// -target=all does not run, as in Cortex.
const QueryScheduler = "query-scheduler"

// initQueryScheduler serves the scheduler's two gRPC services: frontends
// enqueue (FrontendLoop), querier workers pull (QuerierLoop).
func (t *Cortex) initQueryScheduler() (services.Service, error) {
	tls, err := tlsconfig.NewClient(scheduler.TLSPrefix, t.Cfg.QueryScheduler.GRPCClientConfig.TLS, t.TLS)
	if err != nil {
		return nil, err
	}
	s, err := scheduler.New(t.Cfg.QueryScheduler, tls, t.Logger, t.Registry,
		scheduler.WithMaxQueriers(func(tenant string) float64 { return t.Overrides.For(tenant).MaxQueriersPerTenant }),
		scheduler.WithMaxOutstanding(func(tenant string) int { return t.Overrides.For(tenant).MaxOutstandingPerTenant }),
		scheduler.WithQueryPriority(func(tenant string) validation.QueryPriority { return t.Overrides.For(tenant).QueryPriority }),
		scheduler.WithTenantCheck(t.checkGRPCTenant))
	if err != nil {
		return nil, err
	}
	schedulerpb.RegisterSchedulerForFrontendServer(t.Server.GRPC, s)
	schedulerpb.RegisterSchedulerForQuerierServer(t.Server.GRPC, s)
	t.Server.TrackHealth(schedulerpb.SchedulerForFrontendName, s)
	t.Server.TrackHealth(schedulerpb.SchedulerForQuerierName, s)
	return s, nil
}

// checkGRPCTenant applies -auth.client-tenants-file to a tenant named in a
// gRPC message rather than in the call's metadata: the caller's certificate
// identity must be allowed the tenant.
func (t *Cortex) checkGRPCTenant(ctx context.Context, tenant string) error {
	identity := ""
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			identity = auth.PeerIdentity(&info.State)
		}
	}
	if err := t.authorizer.Check(identity, tenant); err != nil {
		var fe *auth.ForbiddenError
		if errors.As(err, &fe) {
			return status.Error(codes.PermissionDenied, err.Error())
		}
		return err
	}
	return nil
}

// frontendSchedulerOptions makes the query-frontend enqueue to the
// query-schedulers of -frontend.scheduler-address over
// -frontend.grpc-client-config.tls-*, and serves FrontendForQuerier, where
// the queriers send the answers.
func (t *Cortex) frontendSchedulerOptions() ([]frontend.Option, error) {
	cfg := t.Cfg.Frontend.Scheduler
	// Loaded, and so checked, whether or not the link is used.
	tls, err := tlsconfig.NewClient(frontend.SchedulerTLSPrefix, cfg.GRPCClientConfig.TLS, t.TLS)
	if err != nil || cfg.SchedulerAddress == "" {
		return nil, err
	}
	addr, err := t.frontendAddress()
	if err != nil {
		return nil, err
	}
	return []frontend.Option{frontend.WithSchedulers(cfg, tls, addr)}, nil
}

// frontendAddress is the gRPC address queriers send this frontend's
// answers to: -frontend.instance-addr, else the gRPC listen address, else
// one of -frontend.instance-interface-names; the port of the gRPC server
// unless -frontend.instance-port.
func (t *Cortex) frontendAddress() (string, error) {
	cfg := t.Cfg.Frontend.Scheduler
	host := cfg.InstanceAddr
	if host == "" {
		if ip := net.ParseIP(t.Cfg.Server.GRPCListenAddress); ip != nil && !ip.IsUnspecified() {
			host = ip.String()
		}
	}
	if host == "" {
		a, err := ring.GetInstanceAddr("", cfg.InstanceInterfaceNames, t.kitLogger, false)
		if err != nil {
			return "", fmt.Errorf("-frontend.instance-addr is empty and no address was found on -frontend.instance-interface-names=%s: %w", strings.Join(cfg.InstanceInterfaceNames, ","), err)
		}
		host = a
	}
	port := cfg.InstancePort
	if port == 0 {
		port = t.Server.GRPCAddr().(*net.TCPAddr).Port
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}
