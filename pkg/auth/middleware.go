package auth

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// HTTPMiddleware applies the identities' tenants to a route that carries a
// tenant; it runs before the tenant middleware, which reads and validates
// X-Scope-OrgID. With -auth.tenant-from-client-cert a request naming no
// tenant gets its certificate's identity as X-Scope-OrgID. With
// -auth.enabled=false every request is the default tenant's, and the
// identity must be allowed that tenant.
func (a *Authorizer) HTTPMiddleware(authEnabled bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		identity := PeerIdentity(r.TLS)
		orgID := r.Header.Get(tenant.HeaderName)
		if !authEnabled {
			orgID = tenant.DefaultTenant
		} else if orgID == "" && a.cfg.TenantFromClientCert && identity != "" {
			if err := tenant.Valid(identity); err != nil {
				http.Error(w, "-auth.tenant-from-client-cert: the client certificate's identity "+quote(identity)+" is not a valid tenant ID ("+err.Error()+"): set "+tenant.HeaderName+" or give the client a certificate whose Common Name is its tenant", http.StatusBadRequest)
				return
			}
			orgID = identity
			r = r.Clone(r.Context())
			r.Header.Set(tenant.HeaderName, identity)
		}
		if orgID != "" {
			if err := a.Check(identity, orgID); err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// AllTenantsMiddleware guards a route that reads or changes every tenant's
// data (the configs service's private API, flushing, ring changes,
// profiles): with -auth.client-tenants-file only identities allowed every
// tenant ("*") may call it.
func (a *Authorizer) AllTenantsMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l := a.list.Load()
		if l == nil {
			next.ServeHTTP(w, r)
			return
		}
		if identity := PeerIdentity(r.TLS); !l.all[identity] {
			a.refusals.Inc()
			http.Error(w, "client "+quote(identity)+" may not call "+r.URL.Path+", which reads or changes every tenant's data: only identities given \"*\" in -auth.client-tenants-file may", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return "\"" + s + "\""
}

// GRPCServerOptions check, on every call whose metadata names a tenant,
// that the caller's certificate identity may act for it; the calls that
// name none (health checks, the query-frontend's worker stream) are the
// services' own to judge.
func (a *Authorizer) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			if err := a.checkGRPC(ctx); err != nil {
				return nil, err
			}
			return handler(ctx, req)
		}),
		grpc.ChainStreamInterceptor(a.streamInterceptor),
	}
}

// streamInterceptor checks a stream's tenant as a call's, and hands the
// Authorizer to the handler for CheckMessageTenant.
func (a *Authorizer) streamInterceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := a.checkGRPC(ss.Context()); err != nil {
		return err
	}
	return handler(srv, &authorizedStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), authorizerKey{}, a)})
}

type authorizerKey struct{}

// authorizedStream carries the Authorizer to a stream's handler, for
// CheckMessageTenant.
type authorizedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authorizedStream) Context() context.Context { return s.ctx }

// CheckMessageTenant checks that the client of a gRPC stream whose messages
// each name their tenant (the ingester's PushStream) may act for orgID:
// the check every call naming its tenant in its metadata gets, made per
// message. It refuses with PermissionDenied, as for a call; a stream of a
// server without the Authorizer's options passes, as would its calls.
func CheckMessageTenant(ctx context.Context, orgID string) error {
	a, _ := ctx.Value(authorizerKey{}).(*Authorizer)
	if a == nil {
		return nil
	}
	if err := a.Check(grpcPeerIdentity(ctx), orgID); err != nil {
		var fe *ForbiddenError
		if errors.As(err, &fe) {
			return status.Error(codes.PermissionDenied, err.Error())
		}
		return err
	}
	return nil
}

// AllTenantsGRPCServices guards the gRPC services named (their full names,
// e.g. grpc.channelz.v1.Channelz), which see every tenant's connections:
// with -auth.client-tenants-file only identities allowed every tenant ("*")
// may call them.
func (a *Authorizer) AllTenantsGRPCServices(services ...string) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(a.guardedUnary(services)),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			if guardedMethod(services, info.FullMethod) {
				if err := a.checkAllTenantsGRPC(ss.Context(), info.FullMethod); err != nil {
					return err
				}
			}
			return handler(srv, ss)
		}),
	}
}

func guardedMethod(services []string, method string) bool {
	for _, s := range services {
		if strings.HasPrefix(method, "/"+s+"/") {
			return true
		}
	}
	return false
}

func (a *Authorizer) guardedUnary(services []string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if guardedMethod(services, info.FullMethod) {
			if err := a.checkAllTenantsGRPC(ctx, info.FullMethod); err != nil {
				return nil, err
			}
		}
		return handler(ctx, req)
	}
}

func (a *Authorizer) checkAllTenantsGRPC(ctx context.Context, method string) error {
	l := a.list.Load()
	if l == nil {
		return nil
	}
	if identity := grpcPeerIdentity(ctx); !l.all[identity] {
		a.refusals.Inc()
		return status.Error(codes.PermissionDenied, "client "+quote(identity)+" may not call "+method+", which sees every tenant's connections: only identities given \"*\" in -auth.client-tenants-file may")
	}
	return nil
}

func grpcPeerIdentity(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			return PeerIdentity(&info.State)
		}
	}
	return ""
}

func (a *Authorizer) checkGRPC(ctx context.Context) error {
	if a.list.Load() == nil {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	orgIDs := md.Get(tenant.HeaderName)
	if len(orgIDs) == 0 {
		return nil
	}
	identity := ""
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			identity = PeerIdentity(&info.State)
		}
	}
	for _, orgID := range orgIDs {
		if err := a.Check(identity, orgID); err != nil {
			var fe *ForbiddenError
			if errors.As(err, &fe) {
				return status.Error(codes.PermissionDenied, err.Error())
			}
			return err
		}
	}
	return nil
}
