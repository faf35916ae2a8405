package frontendpb

import (
	"context"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// QuerierWallTimeHeader carries, on a querier worker's answer, how long the
// querier took to answer, in seconds, for the frontend's query statistics
// (-frontend.query-stats-enabled). The frontend takes it off the answer.
const QuerierWallTimeHeader = "X-Cortex-Querier-Wall-Time"

// ServiceName is the query-frontend's gRPC service, as in Cortex.
const ServiceName = "cortex.Frontend"

// FrontendServer hands queries to the querier workers connected to it.
type FrontendServer interface {
	// Process is one worker's stream: the frontend sends a query, the
	// worker sends its answer, and so on until either side ends it.
	Process(ProcessServer) error
	// NotifyClientShutdown is a querier (its -querier.id) saying it shuts
	// down: it leaves the tenants' shards at once rather than after the
	// querier forget delay, as Cortex's NotifyClientShutdown.
	NotifyClientShutdown(context.Context, *wrapperspb.StringValue) (*emptypb.Empty, error)
}

// ProcessServer is the frontend's side of a worker stream.
type ProcessServer interface {
	Send(*FrontendToClient) error
	Recv() (*ClientToFrontend, error)
	grpc.ServerStream
}

// ProcessClient is the worker's side of the stream.
type ProcessClient interface {
	Send(*ClientToFrontend) error
	Recv() (*FrontendToClient, error)
	grpc.ClientStream
}

// FrontendClient calls a query-frontend.
type FrontendClient interface {
	Process(ctx context.Context, opts ...grpc.CallOption) (ProcessClient, error)
	NotifyClientShutdown(ctx context.Context, querierID *wrapperspb.StringValue, opts ...grpc.CallOption) (*emptypb.Empty, error)
}

// RegisterFrontendServer registers srv on a gRPC server.
func RegisterFrontendServer(s grpc.ServiceRegistrar, srv FrontendServer) {
	s.RegisterService(&serviceDesc, srv)
}

// NewFrontendClient returns a client over cc.
func NewFrontendClient(cc grpc.ClientConnInterface) FrontendClient { return &frontendClient{cc} }

type frontendClient struct{ cc grpc.ClientConnInterface }

func (c *frontendClient) Process(ctx context.Context, opts ...grpc.CallOption) (ProcessClient, error) {
	s, err := c.cc.NewStream(ctx, &serviceDesc.Streams[0], "/"+ServiceName+"/Process", opts...)
	if err != nil {
		return nil, err
	}
	return &processClient{s}, nil
}

func (c *frontendClient) NotifyClientShutdown(ctx context.Context, in *wrapperspb.StringValue, opts ...grpc.CallOption) (*emptypb.Empty, error) {
	out := new(emptypb.Empty)
	if err := c.cc.Invoke(ctx, "/"+ServiceName+"/NotifyClientShutdown", in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

type processClient struct{ grpc.ClientStream }

func (c *processClient) Send(m *ClientToFrontend) error { return c.SendMsg(m) }
func (c *processClient) Recv() (*FrontendToClient, error) {
	m := new(FrontendToClient)
	if err := c.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}

type processServer struct{ grpc.ServerStream }

func (s *processServer) Send(m *FrontendToClient) error { return s.SendMsg(m) }
func (s *processServer) Recv() (*ClientToFrontend, error) {
	m := new(ClientToFrontend)
	if err := s.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*FrontendServer)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Process",
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			return srv.(FrontendServer).Process(&processServer{stream})
		},
	}},
	Methods: []grpc.MethodDesc{{
		MethodName: "NotifyClientShutdown",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			call := func(ctx context.Context, req any) (any, error) {
				return srv.(FrontendServer).NotifyClientShutdown(ctx, req.(*wrapperspb.StringValue))
			}
			if interceptor == nil {
				return call(ctx, in)
			}
			return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + ServiceName + "/NotifyClientShutdown"}, call)
		},
	}},
	Metadata: "frontend.proto",
}

// ToHeaders converts HTTP headers to their message form.
func ToHeaders(h http.Header) []*Header {
	out := make([]*Header, 0, len(h))
	for k, v := range h {
		out = append(out, &Header{Key: k, Values: v})
	}
	return out
}

// FromHeaders converts headers back to HTTP headers.
func FromHeaders(hs []*Header) http.Header {
	h := make(http.Header, len(hs))
	for _, x := range hs {
		h[http.CanonicalHeaderKey(x.Key)] = append(h[http.CanonicalHeaderKey(x.Key)], x.Values...)
	}
	return h
}
