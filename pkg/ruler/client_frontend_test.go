package ruler

import (
	"context"
	"flag"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/grafana/dskit/httpgrpc"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/querier/codec"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/grpcclient"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// fakeFrontend answers httpgrpc.HTTP/Handle like a query-frontend's query
// API, recording what it is asked.
type fakeFrontend struct {
	mu   sync.Mutex
	asks []string // tenant, path and form of each request
}

func (f *fakeFrontend) Handle(ctx context.Context, r *httpgrpc.HTTPRequest) (*httpgrpc.HTTPResponse, error) {
	id, err := tenant.ID(ctx)
	if err != nil {
		return nil, tenant.GRPCError(err)
	}
	form, _ := url.ParseQuery(string(r.Body))
	var accept string
	for _, h := range r.Headers {
		if h.Key == "Accept" {
			accept = strings.Join(h.Values, ";")
		}
	}
	f.mu.Lock()
	f.asks = append(f.asks, id+" "+r.Method+" "+r.Url+" "+form.Get("query")+" Accept: "+accept)
	f.mu.Unlock()
	answer := func(body string) (*httpgrpc.HTTPResponse, error) {
		if codec.Negotiate(accept) != codec.MIMECortexQuery {
			return &httpgrpc.HTTPResponse{Code: 200, Body: []byte(body), Headers: []*httpgrpc.Header{{Key: "Content-Type", Values: []string{codec.MIMEJSON}}}}, nil
		}
		enc, err := codec.FromJSON(nil, []byte(body))
		if err != nil {
			return nil, err
		}
		return &httpgrpc.HTTPResponse{Code: 200, Body: enc, Headers: []*httpgrpc.Header{{Key: "Content-Type", Values: []string{codec.MIMECortexQuery}}}}, nil
	}
	switch form.Get("query") {
	case "sum(up)":
		return answer(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"api"},"value":[` + form.Get("time") + `,"7"]}]}}`)
	case "scalar(up)":
		return answer(`{"status":"success","data":{"resultType":"scalar","result":[` + form.Get("time") + `,"3"]}}`)
	default:
		return &httpgrpc.HTTPResponse{Code: 400, Body: []byte(`{"status":"error","errorType":"bad_data","error":"expression too deep"}`)}, nil
	}
}

func (f *fakeFrontend) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.asks...)
}

// TestRulesQueryThroughFrontend: with a FrontendEngine, a recording rule's
// query goes to the query-frontend over gRPC with mutual TLS, for the
// rule's tenant, as POST /prometheus/api/v1/query asking for
// -ruler.query-response-format; its vector (or scalar) answer, in that
// encoding, is written back as the rule's result, and a refused query is
// the rule's error, naming the frontend.
func TestRulesQueryThroughFrontend(t *testing.T) {
	for _, tc := range []struct{ format, accept string }{
		{"json", "application/json"},
		{"protobuf", "application/x-cortex-query+proto,application/json"},
	} {
		t.Run(tc.format, func(t *testing.T) { testRulesQueryThroughFrontend(t, tc.format, tc.accept) })
	}
}

func testRulesQueryThroughFrontend(t *testing.T, format, accept string) {
	pki := testkit.NewPKI(t, "cluster-ca")
	srvLeaf := pki.Server(t, "query-frontend")
	clientLeaf := pki.Client(t, "ruler")
	loader := tlsconfig.NewLoader(slog.New(slog.DiscardHandler), nil)
	tlsSrv, err := tlsconfig.NewServer("grpc", "server.grpc", tlsconfig.ServerConfig{
		CertPath: srvLeaf.CertPath, KeyPath: srvLeaf.KeyPath, CAPath: pki.CAPath, ClientAuth: "RequireAndVerifyClientCert",
	}, tlsconfig.ServerOptions{}, loader)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(append([]grpc.ServerOption{grpc.Creds(tlsSrv.GRPCCredentials()), grpc.ForceServerCodecV2(grpccodec.Codec{})}, tenant.ServerInterceptors()...)...)
	fe := &fakeFrontend{}
	httpgrpc.RegisterHTTPServer(gs, fe)
	ln := testkit.Listen(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(ln)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})

	tc, err := tlsconfig.NewClient(FrontendClientTLSPrefix, tlsconfig.ClientConfig{CertPath: clientLeaf.CertPath, KeyPath: clientLeaf.KeyPath, CAPath: pki.CAPath}, loader)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := NewFrontendEngine(FrontendConfig{FrontendAddress: ln.Addr().String(), FrontendClient: defaultFrontendClientConfig(), QueryResponseFormat: format}, "/prometheus", tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = engine.Close() })

	store := &memStore{}
	store.set(group(t, "tenant-a", "ns", "name: via-frontend\nrules:\n- record: tenant_a:up:sum\n  expr: sum(up)\n- record: tenant_a:up:scalar\n  expr: scalar(up)\n- record: tenant_a:refused\n  expr: up{job=\"deep\"}\n"))
	dbs := newTenantDBs(t)
	r, err := New(testConfig(t), store, dbs, dbs, engine, nil, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.StartAsync(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.StopAsync()
		_ = r.AwaitTerminated(context.Background())
	})

	eventually(t, "the frontend's answers recorded", func() bool {
		v, s := dbs.instant(t, "tenant-a", "tenant_a:up:sum"), dbs.instant(t, "tenant-a", "tenant_a:up:scalar")
		return len(v) == 1 && v[0].F == 7 && v[0].Metric.Get("job") == "api" && len(s) == 1 && s[0].F == 3
	})
	for _, ask := range fe.requests() {
		if !strings.HasPrefix(ask, "tenant-a POST /prometheus/api/v1/query ") || !strings.HasSuffix(ask, " Accept: "+accept) {
			t.Fatalf("the frontend was asked %q", ask)
		}
	}
	eventually(t, "the refused query is the rule's error", func() bool {
		for _, g := range r.LocalRules("tenant-a", RulesFilter{RuleNames: []string{"tenant_a:refused"}}) {
			for _, rule := range g.Rules {
				if rr, ok := rule.(RecordingRule); ok && strings.Contains(rr.LastError, "query-frontend "+ln.Addr().String()+" answered 400: bad_data: expression too deep") {
					return true
				}
			}
		}
		return false
	})
}

func TestFrontendAddressValidated(t *testing.T) {
	cfg := testConfig(t, "-ruler.frontend-address=frontend")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `-ruler.frontend-address="frontend": want the query-frontend's gRPC host:port`) {
		t.Fatalf("got %v", err)
	}
	cfg = testConfig(t, "-ruler.query-response-format=yaml")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `-ruler.query-response-format="yaml" (ruler.query_response_format): invalid query response format; use json or protobuf`) {
		t.Fatalf("got %v", err)
	}
	fs := newFlagSet()
	var c Config
	c.RegisterFlags(fs)
	for _, name := range []string{"ruler.frontendClient.tls-cert-path", "ruler.frontendClient.tls-ca-path", "ruler.frontendClient.tls-server-name", "ruler.client.tls-key-path", "ruler.client.tls-insecure-skip-verify"} {
		if fs.Lookup(name) == nil {
			t.Errorf("no -%s", name)
		}
	}
}

// defaultFrontendClientConfig holds the -ruler.frontendClient.* defaults.
func defaultFrontendClientConfig() grpcclient.Config {
	var c FrontendConfig
	c.RegisterFlags(flag.NewFlagSet("ruler.frontendClient", flag.PanicOnError))
	return c.FrontendClient
}
