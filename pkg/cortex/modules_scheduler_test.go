package cortex

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/auth"
)

// The query-scheduler's settings load from Cortex's flags and YAML keys.
func TestQuerySchedulerConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cortex.yaml")
	yaml := `
frontend:
  scheduler_address: schedulers.example:9095
  scheduler_worker_concurrency: 3
  scheduler_dns_lookup_period: 30s
  grpc_client_config:
    tls_cert_path: /certs/frontend.crt
    tls_server_name: scheduler
frontend_worker:
  scheduler_address: schedulers.example:9095
  id: querier-7
query_scheduler:
  querier_forget_delay: 1m
  grpc_client_config:
    tls_ca_path: /certs/root.crt
    tls_insecure_skip_verify: true
limits:
  max_queriers_per_tenant: 2
  max_outstanding_requests_per_tenant: 50
`
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"yaml": {"-config.file=" + file},
		"flags": {
			"-frontend.scheduler-address=schedulers.example:9095",
			"-frontend.scheduler-worker-concurrency=3",
			"-frontend.scheduler-dns-lookup-period=30s",
			"-frontend.grpc-client-config.tls-cert-path=/certs/frontend.crt",
			"-frontend.grpc-client-config.tls-server-name=scheduler",
			"-querier.scheduler-address=schedulers.example:9095",
			"-querier.id=querier-7",
			"-query-scheduler.max-outstanding-requests-per-tenant=50",
			"-query-scheduler.querier-forget-delay=1m",
			"-query-scheduler.grpc-client-config.tls-ca-path=/certs/root.crt",
			"-query-scheduler.grpc-client-config.tls-insecure-skip-verify=true",
			"-frontend.max-queriers-per-tenant=2",
		},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := loadConfig(t, args...)
			s := cfg.Frontend.Scheduler
			if s.SchedulerAddress != "schedulers.example:9095" || s.WorkerConcurrency != 3 || s.DNSLookupPeriod.String() != "30s" ||
				s.GRPCClientConfig.TLS.CertPath != "/certs/frontend.crt" || s.GRPCClientConfig.TLS.ServerName != "scheduler" {
				t.Fatalf("frontend: %+v", s)
			}
			if cfg.Worker.SchedulerAddress != "schedulers.example:9095" || cfg.Worker.QuerierID != "querier-7" {
				t.Fatalf("querier worker: scheduler address %q, id %q", cfg.Worker.SchedulerAddress, cfg.Worker.QuerierID)
			}
			q := cfg.QueryScheduler
			if q.QuerierForgetDelay != time.Minute || q.GRPCClientConfig.TLS.CAPath != "/certs/root.crt" || !q.GRPCClientConfig.TLS.InsecureSkipVerify {
				t.Fatalf("query-scheduler: %+v", q)
			}
			if cfg.Limits.MaxQueriersPerTenant != 2 || cfg.Limits.MaxOutstandingPerTenant != 50 {
				t.Fatalf("max_queriers_per_tenant = %v, max_outstanding_requests_per_tenant = %v", cfg.Limits.MaxQueriersPerTenant, cfg.Limits.MaxOutstandingPerTenant)
			}
		})
	}
}

// A missing certificate of a scheduler link stops the start with an error
// naming the flag, whether or not the link is used.
func TestQuerySchedulerTLSValidatedAtStart(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.crt")
	for _, c := range []struct{ target, flag string }{
		{"query-scheduler", "query-scheduler.grpc-client-config.tls-ca-path"},
		{"query-frontend", "frontend.grpc-client-config.tls-ca-path"},
	} {
		args := []string{"-target=" + c.target, "-ring.store=memberlist", "-server.http-listen-port=0", "-server.grpc-listen-port=0",
			"-server.http-listen-address=127.0.0.1", "-server.grpc-listen-address=127.0.0.1",
			"-" + c.flag + "=" + missing}
		_, err := New(loadConfig(t, args...), slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), "-"+c.flag) || !strings.Contains(err.Error(), missing) {
			t.Fatalf("-target=%s with a missing -%s: %v", c.target, c.flag, err)
		}
	}
}

// A scheduler refuses a query whose tenant the frontend's certificate
// identity may not act for, as the frontend refuses the HTTP client.
func TestSchedulerChecksTenantOfFrontendIdentity(t *testing.T) {
	file := filepath.Join(t.TempDir(), "client-tenants.yaml")
	if err := os.WriteFile(file, []byte("clients:\n  frontend-a: [tenant-a]\n  query-frontend: [\"*\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := auth.Config{ClientTenantsFile: file, ClientTenantsReloadPeriod: time.Minute}
	a, err := auth.New(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cortex{authorizer: a}
	from := func(cn string) context.Context {
		state := tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: cn}}}}
		return peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{}, AuthInfo: credentials.TLSInfo{State: state}})
	}
	if err := c.checkGRPCTenant(from("frontend-a"), "tenant-a"); err != nil {
		t.Fatalf("allowed tenant: %v", err)
	}
	err = c.checkGRPCTenant(from("frontend-a"), "tenant-b")
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `client "frontend-a" may not act for tenant "tenant-b"`) {
		t.Fatalf("another tenant: %v", err)
	}
	if err := c.checkGRPCTenant(from("query-frontend"), "tenant-b"); err != nil {
		t.Fatalf("an identity allowed every tenant: %v", err)
	}
}
