package tracing

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// okHandler answers 204, after moving its write deadline as the query
// routes do: an error doing so answers 500.
type okHandler struct{}

func (*okHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func TestOffAddsNothing(t *testing.T) {
	if Enabled() {
		t.Fatal("tracing on before any Setup")
	}
	h := &okHandler{}
	for name, got := range map[string]http.Handler{"HTTPServer": HTTPServer(h), "Route": Route("/api/v1/push", h), "CarriedRequests": CarriedRequests(h)} {
		if got != http.Handler(h) {
			t.Errorf("%s wrapped the handler with tracing off", name)
		}
	}
	if GRPCServerOptions() != nil || GRPCDialOptions() != nil {
		t.Error("gRPC options with tracing off")
	}
	hdr := http.Header{}
	InjectHeaders(context.Background(), hdr)
	if len(hdr) != 0 {
		t.Errorf("headers injected with tracing off: %v", hdr)
	}
}

// recording installs a provider with Cortex's sampler at ratio whose
// spans the returned recorder keeps, until the test ends.
func recording(t *testing.T, ratio float64) *tracetest.SpanRecorder {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler(ratio)), sdktrace.WithSpanProcessor(rec))
	install(tp, propagation.TraceContext{}, slog.New(slog.DiscardHandler))
	t.Cleanup(func() {
		uninstall()
		_ = tp.Shutdown(context.Background())
	})
	return rec
}

// serve mounts the push route as pkg/api does (Route inside the tenant
// middleware) on a mux behind HTTPServer, optionally under a path prefix
// that hides the mux's match, and sends one push.
func serve(t *testing.T, prefix string, header http.Header) {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("POST /api/v1/push", tenant.HTTPMiddleware(true, Route("/api/v1/push", &okHandler{})))
	var h http.Handler = mux
	if prefix != "" {
		h = http.StripPrefix(prefix, mux) // serves a copy of the request
	}
	srv := httptest.NewServer(HTTPServer(h))
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+prefix+"/api/v1/push?secret=in-the-query", strings.NewReader("body"))
	req.Header = header
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("push: %d", resp.StatusCode)
	}
}

func TestHTTPSpansNameTheRouteAndTenantAndNoCredential(t *testing.T) {
	for _, prefix := range []string{"", "/cortex"} {
		rec := recording(t, 1)
		serve(t, prefix, http.Header{
			"X-Scope-Orgid": {"tenant-a"},
			"Authorization": {"Bearer s3cr3t"},
			"Cookie":        {"session=c00kie"},
		})
		spans := rec.Ended()
		if len(spans) != 1 {
			t.Fatalf("prefix %q: %d spans, want 1", prefix, len(spans))
		}
		sp := spans[0]
		if sp.Name() != "HTTP POST - api_v1_push" || sp.SpanKind() != trace.SpanKindServer {
			t.Errorf("prefix %q: span %q (%s), want HTTP POST - api_v1_push, server", prefix, sp.Name(), sp.SpanKind())
		}
		tenants := false
		for _, a := range sp.Attributes() {
			v := a.Value.String()
			if a.Key == TenantIDsAttribute && slices.Equal(a.Value.AsStringSlice(), []string{"tenant-a"}) {
				tenants = true
			}
			if strings.Contains(v, "s3cr3t") || strings.Contains(v, "c00kie") || strings.Contains(v, "in-the-query") {
				t.Errorf("prefix %q: attribute %s=%q carries a credential or the query string", prefix, a.Key, v)
			}
		}
		if !tenants {
			t.Errorf("prefix %q: no tenant_ids=[tenant-a] in %v", prefix, sp.Attributes())
		}
		uninstall()
	}
}

// The sampler is parent-based, as Cortex's: a client's sampled trace
// context is traced at any ratio, an unsampled one at none.
func TestIncomingTraceContextDecidesSampling(t *testing.T) {
	const sampled, unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
	for _, tc := range []struct {
		ratio       float64
		traceparent string
		traced      bool
	}{
		{0, "", false},
		{0, sampled, true},
		{1, "", true},
		{1, unsampled, false},
	} {
		rec := recording(t, tc.ratio)
		h := http.Header{"X-Scope-Orgid": {"tenant-a"}}
		if tc.traceparent != "" {
			h.Set("Traceparent", tc.traceparent)
		}
		serve(t, "", h)
		traced := 0
		for _, sp := range rec.Ended() {
			if sp.SpanContext().IsSampled() {
				traced++
				if tc.traceparent != "" && sp.Parent().TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
					t.Errorf("ratio %g, traceparent %s: span of trace %s, want the caller's", tc.ratio, tc.traceparent, sp.Parent().TraceID())
				}
			}
		}
		if (traced == 1) != tc.traced {
			t.Errorf("ratio %g, traceparent %q: %d spans sampled, want traced=%v", tc.ratio, tc.traceparent, traced, tc.traced)
		}
		uninstall()
	}
}
