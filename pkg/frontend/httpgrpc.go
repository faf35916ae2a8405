package frontend

import (
	"context"
	"net/http/httptest"

	"github.com/grafana/dskit/httpgrpc"
	"google.golang.org/grpc"
)

// RegisterHTTPOverGRPC serves the frontend's query API on s as dskit's
// httpgrpc.HTTP service (method httpgrpc.HTTP/Handle: an HTTP request and
// its answer carried in one gRPC call), through which Cortex's rulers send
// their instant queries with -ruler.frontend-address. The tenant is the
// call's (its metadata, checked by pkg/auth's interceptors like every
// tenant-carrying gRPC call), never a header of the carried request; the
// query then goes through the frontend as one asked over HTTP does
// (expression limits, queueing, the querier workers). Every answer, errors
// included, comes back as the HTTP response it is.
func (f *Frontend) RegisterHTTPOverGRPC(s *grpc.Server) {
	httpgrpc.RegisterHTTPServer(s, httpOverGRPC{f})
}

type httpOverGRPC struct{ f *Frontend }

func (h httpOverGRPC) Handle(ctx context.Context, r *httpgrpc.HTTPRequest) (*httpgrpc.HTTPResponse, error) {
	req, err := httpgrpc.ToHTTPRequest(ctx, r)
	if err != nil {
		return nil, err
	}
	rec := httptest.NewRecorder()
	h.f.handler.ServeHTTP(rec, req.WithContext(withRulerSource(req.Context())))
	return &httpgrpc.HTTPResponse{Code: int32(rec.Code), Headers: httpgrpc.FromHeader(rec.Header()), Body: rec.Body.Bytes()}, nil
}
