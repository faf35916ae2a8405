// Package tenant carries the tenant ID (X-Scope-OrgID) from HTTP requests
// into contexts, and from contexts across gRPC calls, as Cortex does.
//
// Every component imports it, so it must not import any other package of
// this module, and it holds no per-tenant state.
package tenant

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/grafana/dskit/tenant"
	"github.com/grafana/dskit/user"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// HeaderName is the HTTP header that names the tenant.
const HeaderName = user.OrgIDHeaderName

// DefaultTenant is the tenant every request belongs to when
// -auth.enabled=false, as in Cortex.
const DefaultTenant = "fake"

// ID returns the tenant of a request context.
func ID(ctx context.Context) (string, error) {
	id, err := tenant.TenantID(ctx)
	if err != nil {
		// dskit names the first byte of a multi-byte character: name the
		// character instead.
		if org, oerr := user.ExtractOrgID(ctx); oerr == nil {
			for _, part := range strings.Split(org, "|") {
				if verr := Valid(part); verr != nil {
					return "", verr
				}
			}
			if strings.Contains(org, Separator) {
				return "", severalError(org)
			}
		}
	}
	return id, err
}

// Valid checks a tenant ID as dskit does (letters, digits and !-_.*'(),
// at most 150 bytes, not "." or ".."), naming the whole character at fault
// and its byte offset rather than a byte of it.
func Valid(id string) error {
	for i, r := range id {
		if !allowed(r) {
			return &InvalidCharError{ID: id, Offset: i, Char: r}
		}
	}
	return tenant.ValidTenantID(id)
}

func allowed(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("!-_.*'()", r)
}

// InvalidCharError is a tenant ID with a character tenant IDs may not have.
type InvalidCharError struct {
	ID     string
	Offset int  // in bytes
	Char   rune // utf8.RuneError for a byte that is not valid UTF-8
}

func (e *InvalidCharError) Error() string {
	c := fmt.Sprintf("%q (%U)", e.Char, e.Char)
	if e.Char == utf8.RuneError {
		if r, n := utf8.DecodeRuneInString(e.ID[e.Offset:]); r == utf8.RuneError && n <= 1 {
			c = fmt.Sprintf("byte 0x%02x (not valid UTF-8)", e.ID[e.Offset])
		}
	}
	return fmt.Sprintf("tenant ID %.80q contains unsupported character %s at byte %d: allowed are letters a-z and A-Z, digits and !-_.*'()", e.ID, c, e.Offset)
}

// Inject returns ctx with the tenant set.
func Inject(ctx context.Context, id string) context.Context { return user.InjectOrgID(ctx, id) }

// HTTPMiddleware puts the request's tenant into its context. With auth
// enabled a request without X-Scope-OrgID gets 401 and an invalid ID 400;
// with auth disabled every request belongs to DefaultTenant.
func HTTPMiddleware(authEnabled bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !authEnabled {
			next.ServeHTTP(w, r.WithContext(user.InjectOrgID(r.Context(), DefaultTenant)))
			return
		}
		id := r.Header.Get(HeaderName)
		if id == "" {
			http.Error(w, "no org id: set the "+HeaderName+" header to the tenant ID (or run with -auth.enabled=false)", http.StatusUnauthorized)
			return
		}
		if _, err := parseIDs(id); err == nil && strings.Contains(id, Separator) {
			http.Error(w, severalError(id).Error(), http.StatusBadRequest)
			return
		}
		if err := Valid(id); err != nil {
			http.Error(w, "invalid "+HeaderName+" "+quote(id)+": "+err.Error(), http.StatusBadRequest)
			return
		}
		next.ServeHTTP(w, r.WithContext(user.InjectOrgID(r.Context(), id)))
	})
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return "\"" + s + "\""
}

// ClientInterceptors copy the context's tenant into outgoing gRPC metadata.
func ClientInterceptors() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			ctx, err := user.InjectIntoGRPCRequest(ctx)
			if err != nil {
				return err
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			ctx, err := user.InjectIntoGRPCRequest(ctx)
			if err != nil {
				return nil, err
			}
			return streamer(ctx, desc, cc, method, opts...)
		}),
	}
}

// ServerInterceptors put the tenant from incoming gRPC metadata into the
// handler's context. Calls without one go through without a tenant
// (health checks); handlers that need a tenant refuse them via ID.
func ServerInterceptors() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			return handler(fromMetadata(ctx), req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			return handler(srv, &tenantStream{ServerStream: ss, ctx: fromMetadata(ss.Context())})
		}),
	}
}

func fromMetadata(ctx context.Context) context.Context {
	if _, ctx2, err := user.ExtractFromGRPCRequest(ctx); err == nil {
		return ctx2
	}
	return ctx
}

type tenantStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *tenantStream) Context() context.Context { return s.ctx }

// GRPCError is the error a gRPC handler returns for a call without a tenant.
func GRPCError(err error) error {
	return status.Error(codes.Unauthenticated, "no tenant in the call's metadata: "+err.Error())
}
