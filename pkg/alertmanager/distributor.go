package alertmanager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/alertmanager/alertmanagerpb"
	cortextenant "github.com/cortex-tls/cortex/pkg/tenant"
)

// forwardedHeaders are the only request headers a forwarded request keeps:
// content negotiation. Credentials (Authorization, cookies) and the
// tenant header never travel: the tenant goes in the call's metadata.
var forwardedHeaders = []string{"Content-Type", "Accept"}

// distributor answers a tenant's API request on any alertmanager of the
// ring, as Cortex's alertmanager distributor does: posted alerts go to
// every replica of the tenant (each keeps its own copy of the alerts);
// every other request is served by this instance when it is a replica,
// else by the first replica that answers.
func (am *MultitenantAlertmanager) distributor(local http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/alertmanager/-/") {
			local.ServeHTTP(w, r)
			return
		}
		id, err := cortextenant.ID(r.Context())
		if err != nil {
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		if !am.allowed.IsAllowed(id) {
			writeError(w, http.StatusUnauthorized, errTenantNotAllowed)
			return
		}
		replicas, err := am.ring.replicas(id)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "no alertmanager replica for the tenant in the ring: "+err.Error())
			return
		}
		// The body of a tenant's API request forwarded to its replicas (a
		// batch of alerts, a silence) is bounded by -alertmanager.max-recv-msg-size.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, am.cfg.MaxRecvMsgSize))
		if err != nil {
			writeBodyError(w, "reading the request body", err)
			return
		}
		if r.Method == http.MethodPost && r.URL.Path == APIPrefix+"/alerts" {
			am.fanOut(w, r, local, id, replicas, body)
			return
		}
		// A replica that has not started the tenant yet (it joined the
		// ring since the last poll) asks the others first.
		serveLocally := func() {
			r.Body = io.NopCloser(bytes.NewReader(body))
			local.ServeHTTP(w, r)
		}
		if slices.Contains(replicas, am.ring.addr) && am.runsTenant(id) {
			serveLocally()
			return
		}
		var errs []error
		for _, addr := range replicas {
			if addr == am.ring.addr {
				continue
			}
			resp, err := am.forward(r.Context(), addr, id, r, body)
			if err == nil && resp.GetCode() < 500 {
				writeForwarded(w, resp)
				return
			}
			if err == nil {
				err = fmt.Errorf("answered %d", resp.GetCode())
			}
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		}
		if slices.Contains(replicas, am.ring.addr) {
			serveLocally()
			return
		}
		am.logger.Warn("no replica of the tenant answered its API request", "tenant", id, "path", r.URL.Path, "err", errors.Join(errs...))
		writeError(w, http.StatusServiceUnavailable, "no replica of the tenant's Alertmanager answered")
	})
}

// runsTenant reports whether the tenant's Alertmanager runs here, or would
// start on its first request (the fallback configuration).
func (am *MultitenantAlertmanager) runsTenant(id string) bool {
	am.mtx.RLock()
	defer am.mtx.RUnlock()
	_, ok := am.tenants[id]
	return ok || am.fallback != nil
}

// fanOut sends posted alerts to every replica and answers with the first
// success, or the last failure when none succeeded.
func (am *MultitenantAlertmanager) fanOut(w http.ResponseWriter, r *http.Request, local http.Handler, id string, replicas []string, body []byte) {
	var (
		wg   sync.WaitGroup
		mtx  sync.Mutex
		ok   *alertmanagerpb.HTTPResponse
		last *alertmanagerpb.HTTPResponse
	)
	for _, addr := range replicas {
		wg.Go(func() {
			var resp *alertmanagerpb.HTTPResponse
			if addr == am.ring.addr {
				rec := httptest.NewRecorder()
				lr := r.Clone(r.Context())
				lr.Body = io.NopCloser(bytes.NewReader(body))
				local.ServeHTTP(rec, lr)
				resp = &alertmanagerpb.HTTPResponse{Code: int32(rec.Code), Headers: responseHeaders(rec.Header()), Body: rec.Body.Bytes()}
			} else {
				var err error
				resp, err = am.forward(r.Context(), addr, id, r, body)
				if err != nil {
					am.logger.Warn("sending alerts to a replica of the tenant", "tenant", id, "replica", addr, "err", err)
					resp = &alertmanagerpb.HTTPResponse{Code: http.StatusServiceUnavailable, Body: []byte(fmt.Sprintf("%q\n", "replica "+addr+" did not answer"))}
				}
			}
			mtx.Lock()
			defer mtx.Unlock()
			last = resp
			if resp.GetCode()/100 == 2 && ok == nil {
				ok = resp
			}
		})
	}
	wg.Wait()
	if ok != nil {
		writeForwarded(w, ok)
		return
	}
	writeForwarded(w, last)
}

// forward sends the request to the replica at addr.
func (am *MultitenantAlertmanager) forward(ctx context.Context, addr, id string, r *http.Request, body []byte) (*alertmanagerpb.HTTPResponse, error) {
	c, err := am.pool.client(addr)
	if err != nil {
		return nil, err
	}
	req := &alertmanagerpb.HTTPRequest{Method: r.Method, Url: r.URL.RequestURI(), Body: body}
	for _, k := range forwardedHeaders {
		if v := r.Header.Values(k); len(v) > 0 {
			req.Headers = append(req.Headers, &alertmanagerpb.Header{Key: k, Values: v})
		}
	}
	ctx, cancel := am.remoteContext(cortextenant.Inject(ctx, id))
	defer cancel()
	return c.HandleRequest(ctx, req)
}

func responseHeaders(h http.Header) []*alertmanagerpb.Header {
	var out []*alertmanagerpb.Header
	for _, k := range answerHeaders {
		if v := h.Values(k); len(v) > 0 {
			out = append(out, &alertmanagerpb.Header{Key: k, Values: v})
		}
	}
	return out
}

// answerHeaders are the only response headers a replica's answer keeps: the
// API's content type, and the web UI's caching and security policy.
var answerHeaders = []string{"Content-Type", "Cache-Control", "Pragma", "Expires", "Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy"}

func writeForwarded(w http.ResponseWriter, resp *alertmanagerpb.HTTPResponse) {
	for _, h := range resp.GetHeaders() {
		for _, v := range h.GetValues() {
			w.Header().Add(h.GetKey(), v)
		}
	}
	w.WriteHeader(int(resp.GetCode()))
	_, _ = w.Write(resp.GetBody())
}

// grpcServer answers the other alertmanagers. Every call names its tenant
// in its metadata (pkg/tenant's server interceptors), checked against the
// caller's certificate identity by pkg/auth's.
type grpcServer struct{ am *MultitenantAlertmanager }

// HandleRequest serves a tenant's API request forwarded by another
// alertmanager, on this instance only: it is never forwarded again.
func (s grpcServer) HandleRequest(ctx context.Context, in *alertmanagerpb.HTTPRequest) (*alertmanagerpb.HTTPResponse, error) {
	if _, err := cortextenant.ID(ctx); err != nil {
		return nil, cortextenant.GRPCError(err)
	}
	if int64(len(in.GetBody())) > s.am.cfg.MaxRecvMsgSize {
		return nil, status.Errorf(codes.ResourceExhausted, "request body larger than %d bytes (-alertmanager.max-recv-msg-size)", s.am.cfg.MaxRecvMsgSize)
	}
	switch in.GetMethod() {
	case http.MethodGet, http.MethodPost, http.MethodDelete:
	default:
		return nil, status.Errorf(codes.InvalidArgument, "method %q is not forwarded", in.GetMethod())
	}
	req, err := http.NewRequestWithContext(ctx, in.GetMethod(), in.GetUrl(), bytes.NewReader(in.GetBody()))
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "forwarded request: %v", err)
	}
	// The tenant's API, and the web UI (served, as in Cortex, by a replica
	// of the tenant, which answers 404 for a tenant without an Alertmanager).
	if !strings.HasPrefix(in.GetUrl(), APIPrefix+"/") && (in.GetMethod() != http.MethodGet || !isUIPath(req.URL.Path)) {
		return nil, status.Errorf(codes.InvalidArgument, "only the tenant's %s API and web UI are forwarded, not %s %.80q", APIPrefix, in.GetMethod(), in.GetUrl())
	}
	for _, h := range in.GetHeaders() {
		if slices.Contains(forwardedHeaders, http.CanonicalHeaderKey(h.GetKey())) {
			for _, v := range h.GetValues() {
				req.Header.Add(h.GetKey(), v)
			}
		}
	}
	rec := httptest.NewRecorder()
	s.am.local.ServeHTTP(rec, req)
	return &alertmanagerpb.HTTPResponse{Code: int32(rec.Code), Headers: responseHeaders(rec.Header()), Body: rec.Body.Bytes()}, nil
}

// UpdateState merges a change of the tenant's silences or notification log
// sent by another replica.
func (s grpcServer) UpdateState(ctx context.Context, in *alertmanagerpb.Part) (*alertmanagerpb.UpdateStateResponse, error) {
	id, err := cortextenant.ID(ctx)
	if err != nil {
		return nil, cortextenant.GRPCError(err)
	}
	// The key must be the call's tenant's: a caller may only change the
	// state of the tenant it was allowed to act for.
	if in.GetKey() != silencesKeyPrefix+id && in.GetKey() != nflogKeyPrefix+id {
		return nil, status.Errorf(codes.InvalidArgument, "state key %.80q is not tenant %q's", in.GetKey(), id)
	}
	st := s.am.stateOf(id)
	if st == nil {
		return nil, status.Errorf(codes.Unavailable, "tenant %q's Alertmanager is not running on this alertmanager", id)
	}
	if err := st.merge(in); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &alertmanagerpb.UpdateStateResponse{}, nil
}

// ReadState returns the tenant's full state on this replica.
func (s grpcServer) ReadState(ctx context.Context, _ *alertmanagerpb.ReadStateRequest) (*alertmanagerpb.ReadStateResponse, error) {
	id, err := cortextenant.ID(ctx)
	if err != nil {
		return nil, cortextenant.GRPCError(err)
	}
	st := s.am.stateOf(id)
	if st == nil {
		return nil, status.Errorf(codes.NotFound, "tenant %q's Alertmanager is not running on this alertmanager", id)
	}
	parts, err := st.full()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &alertmanagerpb.ReadStateResponse{Parts: parts}, nil
}
