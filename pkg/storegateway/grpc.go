package storegateway

import (
	"context"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
)

// ServiceName is the store-gateway's gRPC service, also the name its
// health is reported under.
const ServiceName = "cortex.StoreGateway"

// StoreGatewayServer is the store-gateway's gRPC API over the blocks in
// object storage. The tenant travels in the request metadata
// (X-Scope-OrgID), as on the ingesters. Its messages are the ingesters'
// (prompb and pkg/ingester/client), so queriers decode both alike.
//
//revive:disable-next-line:exported The name mirrors the ingester's IngesterServer.
type StoreGatewayServer interface {
	// Series streams the encoded chunks of every series that matches the
	// query's matchers and has samples within its time range, sorted by
	// labels, in batches of the size the call asks for
	// (SeriesBatchSizeKey).
	Series(*prompb.Query, SeriesServer) error
	// LabelNames returns the sorted label names of the series matching any
	// of the request's matcher sets in its time range.
	LabelNames(context.Context, *client.LabelNamesRequest) (*client.StringsResponse, error)
	// LabelValues returns the sorted values of a label among the series
	// matching any of the request's matcher sets in its time range.
	LabelValues(context.Context, *client.LabelValuesRequest) (*client.StringsResponse, error)
}

// SeriesServer sends the batches of a Series call.
type SeriesServer interface {
	Send(*prompb.ChunkedReadResponse) error
	grpc.ServerStream
}

// StoreGatewayClient calls a store-gateway.
//
//revive:disable-next-line:exported The name mirrors the ingester's IngesterClient.
type StoreGatewayClient interface {
	Series(ctx context.Context, in *prompb.Query, opts ...grpc.CallOption) (SeriesClient, error)
	LabelNames(ctx context.Context, in *client.LabelNamesRequest, opts ...grpc.CallOption) (*client.StringsResponse, error)
	LabelValues(ctx context.Context, in *client.LabelValuesRequest, opts ...grpc.CallOption) (*client.StringsResponse, error)
}

// SeriesClient receives the batches of a Series call until io.EOF.
type SeriesClient interface {
	Recv() (*prompb.ChunkedReadResponse, error)
	grpc.ClientStream
}

// RegisterStoreGatewayServer registers srv on a gRPC server.
func RegisterStoreGatewayServer(s grpc.ServiceRegistrar, srv StoreGatewayServer) {
	s.RegisterService(&serviceDesc, srv)
}

// NewStoreGatewayClient returns a client over cc. cc must use the
// project's codec (grpccodec), as the ingesters' connections do.
func NewStoreGatewayClient(cc grpc.ClientConnInterface) StoreGatewayClient {
	return &storeGatewayClient{cc}
}

type storeGatewayClient struct{ cc grpc.ClientConnInterface }

func (c *storeGatewayClient) Series(ctx context.Context, in *prompb.Query, opts ...grpc.CallOption) (SeriesClient, error) {
	desc := &serviceDesc.Streams[0]
	stream, err := c.cc.NewStream(ctx, desc, "/"+ServiceName+"/"+desc.StreamName, opts...)
	if err != nil {
		return nil, err
	}
	// A server-streaming call: one request, then the server's messages.
	if err := stream.SendMsg(in); err != nil {
		return nil, err
	}
	if err := stream.CloseSend(); err != nil {
		return nil, err
	}
	return &seriesClient{stream}, nil
}

type seriesClient struct{ grpc.ClientStream }

func (c *seriesClient) Recv() (*prompb.ChunkedReadResponse, error) {
	m := new(prompb.ChunkedReadResponse)
	if err := c.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}

func (c *storeGatewayClient) LabelNames(ctx context.Context, in *client.LabelNamesRequest, opts ...grpc.CallOption) (*client.StringsResponse, error) {
	out := new(client.StringsResponse)
	return out, c.cc.Invoke(ctx, "/"+ServiceName+"/LabelNames", in, out, opts...)
}

func (c *storeGatewayClient) LabelValues(ctx context.Context, in *client.LabelValuesRequest, opts ...grpc.CallOption) (*client.StringsResponse, error) {
	out := new(client.StringsResponse)
	return out, c.cc.Invoke(ctx, "/"+ServiceName+"/LabelValues", in, out, opts...)
}

// unary adapts a typed unary method to grpc's handler signature.
func unary[Req any, Resp any](name string, call func(StoreGatewayServer, context.Context, *Req) (*Resp, error)) grpc.MethodDesc {
	return grpc.MethodDesc{
		MethodName: name,
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(Req)
			if err := dec(in); err != nil {
				return nil, err
			}
			if interceptor == nil {
				return call(srv.(StoreGatewayServer), ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + ServiceName + "/" + name}
			return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return call(srv.(StoreGatewayServer), ctx, req.(*Req))
			})
		},
	}
}

type seriesServer struct{ grpc.ServerStream }

func (s *seriesServer) Send(m *prompb.ChunkedReadResponse) error { return s.SendMsg(m) }

var serviceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*StoreGatewayServer)(nil),
	Methods: []grpc.MethodDesc{
		unary("LabelNames", StoreGatewayServer.LabelNames),
		unary("LabelValues", StoreGatewayServer.LabelValues),
	},
	// The client refers to these by index.
	Streams: []grpc.StreamDesc{{
		StreamName:    "Series",
		ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			in := new(prompb.Query)
			if err := stream.RecvMsg(in); err != nil {
				return err
			}
			return srv.(StoreGatewayServer).Series(in, &seriesServer{stream})
		},
	}},
	Metadata: "storegateway",
}
