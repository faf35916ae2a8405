package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// traceReceiver is an OTLP trace collector on loopback, serving gRPC over
// TLS that requires a client certificate of clientCA.
type traceReceiver struct {
	ptraceotlp.UnimplementedGRPCServer
	addr string

	mu      sync.Mutex
	spans   []receivedSpan
	exports int
	// clients are the Common Names or first DNS names of the client
	// certificates the exports came with.
	clients map[string]bool
}

// receivedSpan is one span with its resource's service name and instance.
type receivedSpan struct {
	service, instance string
	span              ptrace.Span
}

func startTraceReceiver(t *testing.T, certPath, keyPath, clientCAPath string) *traceReceiver {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(clientCAPath)
	if err != nil {
		t.Fatal(err)
	}
	cas := x509.NewCertPool()
	if !cas.AppendCertsFromPEM(caPEM) {
		t.Fatalf("no certificate in %s", clientCAPath)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &traceReceiver{addr: lis.Addr().String(), clients: map[string]bool{}}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    cas,
		MinVersion:   tls.VersionTLS12,
	})))
	ptraceotlp.RegisterGRPCServer(s, r)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return r
}

func (r *traceReceiver) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	client := ""
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
			leaf := info.State.PeerCertificates[0]
			client = leaf.Subject.CommonName
			if client == "" && len(leaf.DNSNames) > 0 {
				client = leaf.DNSNames[0]
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exports++
	r.clients[client] = true
	rss := req.Traces().ResourceSpans()
	for i := range rss.Len() {
		rs := rss.At(i)
		service, _ := rs.Resource().Attributes().Get("service.name")
		instance, _ := rs.Resource().Attributes().Get("service.instance.id")
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				r.spans = append(r.spans, receivedSpan{service: service.AsString(), instance: instance.AsString(), span: sp})
			}
		}
	}
	return ptraceotlp.NewExportResponse(), nil
}

func (r *traceReceiver) received() (spans []receivedSpan, exports int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedSpan(nil), r.spans...), r.exports
}

// find returns the spans of service whose name is name.
func (r *traceReceiver) find(service, name string) []receivedSpan {
	spans, _ := r.received()
	var out []receivedSpan
	for _, s := range spans {
		if s.service == service && s.span.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func tenantIDs(sp ptrace.Span) []string {
	v, ok := sp.Attributes().Get("tenant_ids")
	if !ok || v.Type() != pcommon.ValueTypeSlice {
		return nil
	}
	var out []string
	for _, e := range v.Slice().All() {
		out = append(out, e.AsString())
	}
	return out
}

// TestTracingOTLPMutualTLS: a distributor, an ingester, a query-frontend and
// a querier pulling from it, with -tracing.type=otel, export their spans to
// a collector over mutual TLS. A push's distributor span and the ingester's
// span of the same push share a trace, and so do a query's frontend,
// querier and ingester spans; they name the tenant; no span carries the
// client's Authorization header or cookie. A process whose collector's certificate is not signed
// by -tracing.otel.tls.tls-ca-path exports nothing to it.
func TestTracingOTLPMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes")
	}
	t.Parallel()
	certs := certDir(t)
	recv := startTraceReceiver(t, filepath.Join(certs, "server.crt"), filepath.Join(certs, "server.key"), filepath.Join(certs, "root.crt"))
	// A collector with a certificate of a CA the processes do not trust.
	foreignDir := t.TempDir()
	foreignCA := testkit.NewCA(t, "foreign")
	rogueCert, rogueKey := testkit.WritePair(t, foreignDir, "rogue", testkit.ServerLeaf(t, foreignCA, "localhost"))
	rogue := startTraceReceiver(t, rogueCert, rogueKey, filepath.Join(certs, "root.crt"))

	tracingFlags := func(endpoint string) []string {
		return []string{
			"-tracing.type=otel",
			"-tracing.otel.otlp-endpoint=" + endpoint,
			"-tracing.otel.sample-ratio=1",
			"-tracing.otel.tls-enabled=true",
			"-tracing.otel.tls.tls-cert-path=" + filepath.Join(certs, "client.crt"),
			"-tracing.otel.tls.tls-key-path=" + filepath.Join(certs, "client.key"),
			"-tracing.otel.tls.tls-ca-path=" + filepath.Join(certs, "root.crt"),
			"-tracing.otel.tls.tls-server-name=localhost",
		}
	}
	c := &cluster{t: t, dir: t.TempDir(), certs: certs, client: httpClient(tlsClient(t, clientConfig(certs, "client")))}
	ing := c.start(append(tracingFlags(recv.addr),
		"-target=ingester",
		"-ingester.lifecycler.ID=ingester-0",
		"-ingester.lifecycler.addr=127.0.0.1",
		"-blocks-storage.tsdb.dir="+filepath.Join(c.dir, "ingester-0"),
		"-distributor.replication-factor=1",
	)...)
	c.distributor = c.start(append(tracingFlags(recv.addr), "-target=distributor", "-distributor.replication-factor=1")...)
	frontend := testkit.StartCortex(t, append(append(mtlsFlags(certs), tracingFlags(recv.addr)...),
		"-target=query-frontend",
		"-ring.store=memberlist", // the frontend uses no ring; any store but the in-memory one passes validation
		"-memberlist.bind-port=0",
	)...)
	c.querier = c.start(append(tracingFlags(recv.addr), "-target=querier", "-distributor.replication-factor=1",
		"-querier.frontend-address="+frontend.GRPCAddr,
		"-querier.frontend-client.tls-cert-path="+filepath.Join(certs, "client.crt"),
		"-querier.frontend-client.tls-key-path="+filepath.Join(certs, "client.key"),
		"-querier.frontend-client.tls-ca-path="+filepath.Join(certs, "root.crt"),
	)...)
	untrusting := c.start(append(tracingFlags(rogue.addr), "-target=distributor", "-distributor.replication-factor=1")...)
	for _, p := range []*testkit.Cortex{ing, c.distributor, c.querier, untrusting, frontend} {
		waitReady(p, c.client)
	}
	c.waitActiveIngesters(c.distributor, 1)
	c.waitActiveIngesters(c.querier, 1)
	c.waitActiveIngesters(untrusting, 1)

	const secret = "Bearer s3cr3t-token-never-traced"
	const cookie = "session=c00kie-never-traced"
	now := time.Now().UnixMilli()
	push := func(p *testkit.Cortex, i int) {
		t.Helper()
		raw, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("traced_metric", i, now, float64(i))}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", "https://"+p.HTTPAddr+"/api/v1/push", bytes.NewReader(snappy.Encode(nil, raw)))
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("X-Scope-OrgID", "tenant-a")
		req.Header.Set("Authorization", secret)
		req.Header.Set("Cookie", cookie)
		resp, err := c.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("push through %s: %d", p.HTTPAddr, resp.StatusCode)
		}
	}
	push(c.distributor, 1)
	push(untrusting, 2)
	res := c.query("tenant-a", "query", url.Values{"query": {"traced_metric"}})
	if len(res.Data.Result) != 2 {
		t.Fatalf("query: %+v, want the two series pushed", res.Data.Result)
	}

	// The push: its distributor span and the ingester's span of the same
	// trace, both tagged with the tenant.
	var pushSpan, ingSpan receivedSpan
	c.distributor.EventuallyNil(30*time.Second, "the push's distributor and ingester spans at the collector", func() error {
		pushes := recv.find("cortex-distributor", "HTTP POST - api_v1_push")
		if len(pushes) != 1 {
			all, n := recv.received()
			var names []string
			for _, s := range all {
				names = append(names, s.service+":"+s.span.Name())
			}
			return fmt.Errorf("%d distributor push spans among %d exports of %d spans: %v", len(pushes), n, len(all), names)
		}
		pushSpan = pushes[0]
		for _, s := range recv.find("cortex-ingester", "cortex.Ingester/Push") {
			if s.span.TraceID() == pushSpan.span.TraceID() {
				ingSpan = s
				return nil
			}
		}
		return fmt.Errorf("no ingester Push span in trace %s", pushSpan.span.TraceID())
	})
	if pushSpan.span.Kind() != ptrace.SpanKindServer || ingSpan.span.Kind() != ptrace.SpanKindServer {
		t.Errorf("span kinds: distributor %s, ingester %s, want Server", pushSpan.span.Kind(), ingSpan.span.Kind())
	}
	if ingSpan.instance != "ingester-0" {
		t.Errorf("ingester span's service.instance.id = %q, want ingester-0", ingSpan.instance)
	}
	for _, s := range []receivedSpan{pushSpan, ingSpan} {
		if got := tenantIDs(s.span); len(got) != 1 || got[0] != "tenant-a" {
			t.Errorf("%s span %q: tenant_ids %v, want [tenant-a]", s.service, s.span.Name(), got)
		}
	}
	// The ingester's span is a child of the distributor's client call.
	clientCall := false
	for _, s := range recv.find("cortex-distributor", "cortex.Ingester/Push") {
		if s.span.SpanID() == ingSpan.span.ParentSpanID() && s.span.Kind() == ptrace.SpanKindClient {
			clientCall = true
		}
	}
	if !clientCall {
		t.Errorf("the ingester's Push span's parent %s is not the distributor's client span", ingSpan.span.ParentSpanID())
	}
	// The query: the querier's span and the ingester's, one trace.
	inTrace := func(service string, trace pcommon.TraceID) []receivedSpan {
		spans, _ := recv.received()
		var out []receivedSpan
		for _, s := range spans {
			if s.service == service && s.span.TraceID() == trace {
				out = append(out, s)
			}
		}
		return out
	}
	c.querier.EventuallyNil(30*time.Second, "the query's querier and ingester spans at the collector", func() error {
		for _, q := range recv.find("cortex-querier", "HTTP GET - prometheus_api_v1_query") {
			if got := tenantIDs(q.span); len(got) != 1 || got[0] != "tenant-a" {
				return fmt.Errorf("query span's tenant_ids %v", got)
			}
			if len(inTrace("cortex-ingester", q.span.TraceID())) > 0 {
				return nil
			}
		}
		return fmt.Errorf("no query span with an ingester span in its trace")
	})

	// A query through the query-frontend: the frontend's span, the
	// querier's span of the query it pulled, and the ingester's, one trace.
	req, _ := http.NewRequest("GET", "https://"+frontend.HTTPAddr+"/prometheus/api/v1/query?"+url.Values{"query": {"count(traced_metric)"}}.Encode(), nil)
	req.Header.Set("X-Scope-OrgID", "tenant-a")
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("query through the frontend: %d", resp.StatusCode)
	}
	frontend.EventuallyNil(30*time.Second, "the frontend's, querier's and ingester's spans of one query", func() error {
		fq := recv.find("cortex-query-frontend", "HTTP GET - prometheus_api_v1_query")
		if len(fq) != 1 {
			return fmt.Errorf("%d frontend query spans", len(fq))
		}
		if got := tenantIDs(fq[0].span); len(got) != 1 || got[0] != "tenant-a" {
			return fmt.Errorf("frontend span's tenant_ids %v", got)
		}
		querier := inTrace("cortex-querier", fq[0].span.TraceID())
		carried := false
		for _, s := range querier {
			if s.span.Name() == "HTTP GET - prometheus_api_v1_query" && s.span.Kind() == ptrace.SpanKindServer {
				if got := tenantIDs(s.span); len(got) != 1 || got[0] != "tenant-a" {
					return fmt.Errorf("the querier's span of the frontend's query: tenant_ids %v", got)
				}
				carried = true
			}
		}
		if !carried || len(inTrace("cortex-ingester", fq[0].span.TraceID())) == 0 {
			var names []string
			for _, s := range querier {
				names = append(names, s.span.Name())
			}
			return fmt.Errorf("trace %s: querier spans %v, %d ingester spans", fq[0].span.TraceID(), names, len(inTrace("cortex-ingester", fq[0].span.TraceID())))
		}
		return nil
	})

	// No credential anywhere in the spans.
	spans, _ := recv.received()
	for _, s := range spans {
		for k, v := range s.span.Attributes().All() {
			lk, val := strings.ToLower(k), v.AsString()
			if strings.Contains(lk, "authorization") || strings.Contains(lk, "cookie") || strings.Contains(val, "s3cr3t") || strings.Contains(val, "c00kie") || strings.Contains(val, "PRIVATE KEY") || strings.Contains(val, "CERTIFICATE") {
				t.Errorf("%s span %q carries %s=%q", s.service, s.span.Name(), k, val)
			}
		}
	}
	recv.mu.Lock()
	if len(recv.clients) != 1 || !recv.clients["client"] {
		t.Errorf("exports came with client certificates %v, want only client", recv.clients)
	}
	recv.mu.Unlock()

	// The process that does not trust the rogue collector's certificate
	// fails to export, and the rogue collector receives nothing.
	untrusting.WaitLog("is not signed by a CA in -tracing.otel.tls.tls-ca-path=")
	if _, n := rogue.received(); n != 0 {
		t.Fatalf("the collector with a foreign certificate received %d exports", n)
	}
	for _, s := range spans {
		if s.service == "cortex-distributor" && s.span.Name() == "HTTP POST - api_v1_push" && s.span.TraceID() != pushSpan.span.TraceID() {
			t.Fatalf("the trusted collector received the other distributor's push span")
		}
	}
}
