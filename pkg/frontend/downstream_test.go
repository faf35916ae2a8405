package frontend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// TestDownstreamURL: with -frontend.downstream-url the queries, split as
// any, go to that API under its path, over mutual TLS with the
// -frontend.grpc-client-config.tls-* settings, carrying the tenant and no
// client credentials; the frontend is ready with no querier.
func TestDownstreamURL(t *testing.T) {
	pki := testkit.NewPKI(t, "root")
	server := pki.Server(t, "prometheus")
	client := pki.Client(t, "frontend")
	caPEM, err := os.ReadFile(pki.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)

	var mu sync.Mutex
	var seen []*http.Request
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Clone(context.Background()))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "downstream=1")
		p := `[[` + r.FormValue("start") + `,"1"]]`
		_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":`+p+`}]}}`)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{server.TLSCertificate()}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: roots}
	srv.StartTLS()
	defer srv.Close()

	cfg := defaultConfig()
	cfg.DownstreamURL = srv.URL + "/prometheus-root"
	cfg.Scheduler.GRPCClientConfig.TLS.CertPath, cfg.Scheduler.GRPCClientConfig.TLS.KeyPath, cfg.Scheduler.GRPCClientConfig.TLS.CAPath = client.CertPath, client.KeyPath, pki.CAPath
	dtls, err := tlsconfig.NewClient(SchedulerTLSPrefix, cfg.Scheduler.GRPCClientConfig.TLS, tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil))
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(cfg, nil, nil, prometheus.NewRegistry(), WithDownstream(dtls))
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	defer services.StopAndAwaitTerminated(context.Background(), f) //nolint:errcheck
	if err := f.CheckReady(context.Background()); err != nil {
		t.Fatalf("not ready with a downstream URL and no querier: %v", err)
	}
	api := tenant.HTTPMiddleware(true, f.Handler())
	get := func(f http.Handler, path string, params url.Values) (int, string) {
		req := httptest.NewRequest(http.MethodGet, path+"?"+params.Encode(), nil)
		req.Header.Set(tenant.HeaderName, "t1")
		req.Header.Set("Authorization", "Bearer secret")
		req.Header.Set("Cookie", "session=secret")
		rec := httptest.NewRecorder()
		f.ServeHTTP(rec, req)
		if rec.Header().Get("Set-Cookie") != "" {
			t.Errorf("the downstream's cookie reached the client")
		}
		return rec.Code, rec.Body.String()
	}
	code, body := get(api, "/prometheus/api/v1/query_range", url.Values{"query": {"up"}, "start": {"0"}, "end": {"176400"}, "step": {"3600"}})
	if code != http.StatusOK || !strings.Contains(body, `"metric":{"a":"1"}`) {
		t.Fatalf("query_range through the downstream: %d %s", code, body)
	}
	mu.Lock()
	if len(seen) != 3 {
		t.Fatalf("the downstream got %d requests for a range query of 3 parts", len(seen))
	}
	for _, r := range seen {
		if r.URL.Path != "/prometheus-root/prometheus/api/v1/query_range" || r.Header.Get(tenant.HeaderName) != "t1" ||
			r.Header.Get("Authorization") != "" || r.Header.Get("Cookie") != "" || len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "frontend" {
			t.Fatalf("downstream request %s, headers %v", r.URL.Path, r.Header)
		}
	}
	mu.Unlock()

	// Without the client certificate the downstream refuses the link: the
	// query fails rather than going elsewhere.
	plain, err := New(cfg, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(tenant.HTTPMiddleware(true, plain.Handler()), "/prometheus/api/v1/query", url.Values{"query": {"up"}}); code != http.StatusBadGateway || !strings.Contains(body, "-frontend.downstream-url") {
		t.Fatalf("without the TLS settings: %d %s", code, body)
	}
}

func TestDownstreamURLRefused(t *testing.T) {
	for url, want := range map[string]string{
		"ftp://prometheus:9090":              `-frontend.downstream-url "ftp://prometheus:9090": want http:// or https://host[:port][/path]`,
		"https://user:pw@prometheus:9090":    "-frontend.downstream-url: credentials in the URL are not accepted: the link authenticates with -frontend.grpc-client-config.tls-* client certificates",
		"prometheus:9090":                    `-frontend.downstream-url "prometheus:9090": want http:// or https://host[:port][/path]`,
		"https://prometheus:9090?sched=both": "-frontend.downstream-url and -frontend.scheduler-address both set: the queries go to one or the other",
	} {
		cfg := defaultConfig()
		cfg.DownstreamURL = url
		if strings.Contains(url, "sched") {
			cfg.Scheduler.SchedulerAddress = "scheduler:9095"
		}
		if err := cfg.Validate(); err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %s", url, err, want)
		}
	}
}
