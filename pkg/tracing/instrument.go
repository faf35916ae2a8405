package tracing

import (
	"context"
	"net/http"
	"strings"

	"github.com/grafana/dskit/middleware"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// TenantIDsAttribute is the span attribute naming the tenants a request
// acts for: Cortex's tenant_ids tag.
const TenantIDsAttribute = "tenant_ids"

// healthCheck is the method the client pools call every few seconds on
// every peer: its spans would only bury the requests' ones.
const healthCheck = "/grpc.health.v1.Health/Check"

// HTTPServer wraps the process's HTTP handler: every request gets a server
// span, a child of the trace context it carries (traceparent), named
// "HTTP <method>" until Route names its route.
func HTTPServer(h http.Handler) http.Handler {
	p, ok := active()
	if !ok {
		return h
	}
	return otelhttp.NewHandler(h, "HTTP",
		otelhttp.WithTracerProvider(p), otelhttp.WithPropagators(p.propagator),
		otelhttp.WithSpanNameFormatter(spanName))
}

// spanName is the span name of a request: "HTTP <method>", then, once the
// mux has matched it, Cortex's "HTTP <method> - <route>". otelhttp asks
// again after the handler, when the mux set the request's Pattern.
func spanName(_ string, r *http.Request) string {
	if r.Pattern == "" {
		return "HTTP " + r.Method
	}
	path := r.Pattern
	if i := strings.IndexByte(path, ' '); i >= 0 {
		path = path[i+1:]
	}
	return routeSpanName(r.Method, middleware.MakeLabelValue(path))
}

func routeSpanName(method, route string) string { return "HTTP " + method + " - " + route }

// Route names the request's span after the route at path, as Cortex does
// ("HTTP POST - api_v1_push"), also when -server.path-prefix hides the
// mux's match from HTTPServer, and tags it with the request's tenants. It
// wraps the route's handler inside the tenant middleware.
func Route(path string, h http.Handler) http.Handler {
	if _, ok := active(); !ok {
		return h
	}
	name := middleware.MakeLabelValue(path)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sp := trace.SpanFromContext(r.Context()); sp.IsRecording() {
			sp.SetName(routeSpanName(r.Method, name))
			sp.SetAttributes(semconv.HTTPRoute(path))
			tagTenants(r.Context(), sp)
		}
		h.ServeHTTP(w, r)
	})
}

// CarriedRequests wraps the handler of the HTTP requests carried inside
// other calls (the queries a querier pulls from its query-frontends): each
// gets a server span as HTTPServer gives the requests it serves, a child
// of the trace context the request's headers carry (InjectHeaders), tagged
// with the request's tenants, which the caller put in its context.
func CarriedRequests(h http.Handler) http.Handler {
	if _, ok := active(); !ok {
		return h
	}
	return HTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tagTenants(r.Context(), trace.SpanFromContext(r.Context()))
		h.ServeHTTP(w, r)
	}))
}

// GRPCServerOptions are the gRPC server's: a server span per call, a child
// of the trace context in the call's metadata, tagged with the call's
// tenants. They go after the tenant interceptors, which they read.
func GRPCServerOptions() []grpc.ServerOption {
	p, ok := active()
	if !ok {
		return nil
	}
	return []grpc.ServerOption{
		grpc.StatsHandler(otelgrpc.NewServerHandler(grpcOptions(p)...)),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			tagTenants(ctx, trace.SpanFromContext(ctx))
			return handler(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			tagTenants(ss.Context(), trace.SpanFromContext(ss.Context()))
			return handler(srv, ss)
		}),
	}
}

// GRPCDialOptions are every gRPC client link's: a client span per call,
// whose trace context goes to the server in the call's metadata.
func GRPCDialOptions() []grpc.DialOption {
	p, ok := active()
	if !ok {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(grpcOptions(p)...))}
}

func grpcOptions(p *Provider) []otelgrpc.Option {
	return []otelgrpc.Option{
		otelgrpc.WithTracerProvider(p), otelgrpc.WithPropagators(p.propagator),
		otelgrpc.WithFilter(func(info *stats.RPCTagInfo) bool { return info.FullMethodName != healthCheck }),
	}
}

// InjectHeaders writes ctx's trace context into h, for a request carried
// inside another call (the query-frontend's queries to its queriers).
func InjectHeaders(ctx context.Context, h http.Header) {
	if p, ok := active(); ok {
		p.propagator.Inject(ctx, propagation.HeaderCarrier(h))
	}
}

// ExtractHeaders returns ctx with the trace context InjectHeaders wrote
// into h.
func ExtractHeaders(ctx context.Context, h http.Header) context.Context {
	if p, ok := active(); ok {
		return p.propagator.Extract(ctx, propagation.HeaderCarrier(h))
	}
	return ctx
}

func tagTenants(ctx context.Context, sp trace.Span) {
	if !sp.IsRecording() {
		return
	}
	if ids, err := tenant.IDs(ctx); err == nil {
		sp.SetAttributes(attribute.StringSlice(TenantIDsAttribute, ids))
	}
}
