package client

import (
	"context"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
)

// ServiceName is the ingester's gRPC service.
const ServiceName = "cortex.Ingester"

// IngesterServer is the ingester's gRPC API. The tenant travels in the
// request metadata (X-Scope-OrgID), as in Cortex.
type IngesterServer interface {
	// Push stores the series of a remote-write request. The request is
	// released when Push returns: Push copies what it keeps of it.
	Push(context.Context, *PushRequest) (*PushResponse, error)
	// QueryStream streams the samples and histograms of every series that
	// matches the query's matchers within its time range.
	QueryStream(*prompb.Query, QueryStreamServer) error
	// QueryStreamChunks streams the encoded TSDB chunks of every series that
	// matches the query's matchers and overlaps its time range. Chunks may
	// hold samples outside the range: readers trim.
	QueryStreamChunks(*prompb.Query, QueryStreamChunksServer) error
	LabelNames(context.Context, *LabelNamesRequest) (*StringsResponse, error)
	LabelValues(context.Context, *LabelValuesRequest) (*StringsResponse, error)
	Series(context.Context, *SeriesRequest) (*SeriesResponse, error)
	Metadata(context.Context, *MetadataRequest) (*MetadataResponse, error)
	UserStats(context.Context, *UserStatsRequest) (*UserStatsResponse, error)
	// PushStream stores the pushes of a distributor's long-lived stream
	// (-distributor.use-stream-push), each message naming its tenant, and
	// answers each as Push would.
	PushStream(PushStreamServer) error
	// LabelNamesStream, LabelValuesStream and SeriesStream answer as
	// LabelNames, LabelValues and Series do, in messages of at most
	// MetadataStreamBatchSize strings or series (Cortex's
	// LabelNamesStream, LabelValuesStream and
	// MetricsForLabelMatchersStream).
	LabelNamesStream(*LabelNamesRequest, StringsStreamServer) error
	LabelValuesStream(*LabelValuesRequest, StringsStreamServer) error
	SeriesStream(*SeriesRequest, SeriesStreamServer) error
}

// MetadataStreamBatchSize is how many strings or series a message of the
// metadata streams holds at most, Cortex's.
const MetadataStreamBatchSize = 128

// SendInBatches sends all in messages of at most MetadataStreamBatchSize
// items; an empty answer is no message.
func SendInBatches[T any](all []T, send func([]T) error) error {
	for len(all) > 0 {
		n := min(len(all), MetadataStreamBatchSize)
		if err := send(all[:n]); err != nil {
			return err
		}
		all = all[n:]
	}
	return nil
}

// StringsStreamServer sends label names or values in batches.
type StringsStreamServer interface {
	Send(*StringsResponse) error
	grpc.ServerStream
}

// SeriesStreamServer sends label sets in batches.
type SeriesStreamServer interface {
	Send(*SeriesResponse) error
	grpc.ServerStream
}

// QueryStreamServer sends query results in batches of series.
type QueryStreamServer interface {
	Send(*prompb.QueryResult) error
	grpc.ServerStream
}

// QueryStreamChunksServer sends chunked query results in batches of series.
type QueryStreamChunksServer interface {
	Send(*prompb.ChunkedReadResponse) error
	grpc.ServerStream
}

// IngesterClient calls an ingester.
type IngesterClient interface {
	Push(ctx context.Context, in *prompb.WriteRequest, opts ...grpc.CallOption) (*PushResponse, error)
	QueryStream(ctx context.Context, in *prompb.Query, opts ...grpc.CallOption) (QueryStreamClient, error)
	QueryStreamChunks(ctx context.Context, in *prompb.Query, opts ...grpc.CallOption) (QueryStreamChunksClient, error)
	LabelNames(ctx context.Context, in *LabelNamesRequest, opts ...grpc.CallOption) (*StringsResponse, error)
	LabelValues(ctx context.Context, in *LabelValuesRequest, opts ...grpc.CallOption) (*StringsResponse, error)
	Series(ctx context.Context, in *SeriesRequest, opts ...grpc.CallOption) (*SeriesResponse, error)
	Metadata(ctx context.Context, in *MetadataRequest, opts ...grpc.CallOption) (*MetadataResponse, error)
	UserStats(ctx context.Context, in *UserStatsRequest, opts ...grpc.CallOption) (*UserStatsResponse, error)
	LabelNamesStream(ctx context.Context, in *LabelNamesRequest, opts ...grpc.CallOption) (StringsStreamClient, error)
	LabelValuesStream(ctx context.Context, in *LabelValuesRequest, opts ...grpc.CallOption) (StringsStreamClient, error)
	SeriesStream(ctx context.Context, in *SeriesRequest, opts ...grpc.CallOption) (SeriesStreamClient, error)
	// PushStream opens a PushStream. Conn.Push uses its own, with
	// -distributor.use-stream-push.
	PushStream(ctx context.Context, opts ...grpc.CallOption) (PushStreamClient, error)
}

// PushStreamClient sends pushes on a PushStream and receives their answers.
type PushStreamClient interface {
	Send(*StreamPushRequest) error
	Recv() (*StreamPushResponse, error)
	grpc.ClientStream
}

// StringsStreamClient receives label names or values until io.EOF.
type StringsStreamClient interface {
	Recv() (*StringsResponse, error)
	grpc.ClientStream
}

// SeriesStreamClient receives label sets until io.EOF.
type SeriesStreamClient interface {
	Recv() (*SeriesResponse, error)
	grpc.ClientStream
}

// QueryStreamClient receives query results until io.EOF.
type QueryStreamClient interface {
	Recv() (*prompb.QueryResult, error)
	grpc.ClientStream
}

// QueryStreamChunksClient receives chunked query results until io.EOF.
type QueryStreamChunksClient interface {
	Recv() (*prompb.ChunkedReadResponse, error)
	grpc.ClientStream
}

// RegisterIngesterServer registers srv on a gRPC server.
func RegisterIngesterServer(s grpc.ServiceRegistrar, srv IngesterServer) {
	s.RegisterService(&serviceDesc, srv)
}

// NewIngesterClient returns a client over cc.
func NewIngesterClient(cc grpc.ClientConnInterface) IngesterClient { return &ingesterClient{cc} }

type ingesterClient struct{ cc grpc.ClientConnInterface }

func (c *ingesterClient) Push(ctx context.Context, in *prompb.WriteRequest, opts ...grpc.CallOption) (*PushResponse, error) {
	out := new(PushResponse)
	return out, c.cc.Invoke(ctx, "/"+ServiceName+"/Push", in, out, opts...)
}

func (c *ingesterClient) QueryStream(ctx context.Context, in *prompb.Query, opts ...grpc.CallOption) (QueryStreamClient, error) {
	stream, err := c.openServerStream(ctx, &serviceDesc.Streams[0], in, opts)
	if err != nil {
		return nil, err
	}
	return &queryStreamClient{stream}, nil
}

func (c *ingesterClient) QueryStreamChunks(ctx context.Context, in *prompb.Query, opts ...grpc.CallOption) (QueryStreamChunksClient, error) {
	stream, err := c.openServerStream(ctx, &serviceDesc.Streams[1], in, opts)
	if err != nil {
		return nil, err
	}
	return &queryStreamChunksClient{stream}, nil
}

// openServerStream starts a server-streaming call: one request, then the
// server's messages.
func (c *ingesterClient) openServerStream(ctx context.Context, desc *grpc.StreamDesc, in any, opts []grpc.CallOption) (grpc.ClientStream, error) {
	stream, err := c.cc.NewStream(ctx, desc, "/"+ServiceName+"/"+desc.StreamName, opts...)
	if err != nil {
		return nil, err
	}
	if err := stream.SendMsg(in); err != nil {
		return nil, err
	}
	if err := stream.CloseSend(); err != nil {
		return nil, err
	}
	return stream, nil
}

type queryStreamClient struct{ grpc.ClientStream }

func (c *queryStreamClient) Recv() (*prompb.QueryResult, error) {
	m := new(prompb.QueryResult)
	if err := c.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}

type queryStreamChunksClient struct{ grpc.ClientStream }

func (c *queryStreamChunksClient) Recv() (*prompb.ChunkedReadResponse, error) {
	m := new(prompb.ChunkedReadResponse)
	if err := c.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}

func (c *ingesterClient) LabelNames(ctx context.Context, in *LabelNamesRequest, opts ...grpc.CallOption) (*StringsResponse, error) {
	out := new(StringsResponse)
	return out, c.cc.Invoke(ctx, "/"+ServiceName+"/LabelNames", in, out, opts...)
}

func (c *ingesterClient) LabelValues(ctx context.Context, in *LabelValuesRequest, opts ...grpc.CallOption) (*StringsResponse, error) {
	out := new(StringsResponse)
	return out, c.cc.Invoke(ctx, "/"+ServiceName+"/LabelValues", in, out, opts...)
}

func (c *ingesterClient) Series(ctx context.Context, in *SeriesRequest, opts ...grpc.CallOption) (*SeriesResponse, error) {
	out := new(SeriesResponse)
	return out, c.cc.Invoke(ctx, "/"+ServiceName+"/Series", in, out, opts...)
}

func (c *ingesterClient) Metadata(ctx context.Context, in *MetadataRequest, opts ...grpc.CallOption) (*MetadataResponse, error) {
	out := new(MetadataResponse)
	return out, c.cc.Invoke(ctx, "/"+ServiceName+"/Metadata", in, out, opts...)
}

func (c *ingesterClient) UserStats(ctx context.Context, in *UserStatsRequest, opts ...grpc.CallOption) (*UserStatsResponse, error) {
	out := new(UserStatsResponse)
	return out, c.cc.Invoke(ctx, "/"+ServiceName+"/UserStats", in, out, opts...)
}

func (c *ingesterClient) LabelNamesStream(ctx context.Context, in *LabelNamesRequest, opts ...grpc.CallOption) (StringsStreamClient, error) {
	stream, err := c.openServerStream(ctx, &serviceDesc.Streams[3], in, opts)
	if err != nil {
		return nil, err
	}
	return &recvClient[StringsResponse]{stream}, nil
}

func (c *ingesterClient) LabelValuesStream(ctx context.Context, in *LabelValuesRequest, opts ...grpc.CallOption) (StringsStreamClient, error) {
	stream, err := c.openServerStream(ctx, &serviceDesc.Streams[4], in, opts)
	if err != nil {
		return nil, err
	}
	return &recvClient[StringsResponse]{stream}, nil
}

func (c *ingesterClient) SeriesStream(ctx context.Context, in *SeriesRequest, opts ...grpc.CallOption) (SeriesStreamClient, error) {
	stream, err := c.openServerStream(ctx, &serviceDesc.Streams[5], in, opts)
	if err != nil {
		return nil, err
	}
	return &recvClient[SeriesResponse]{stream}, nil
}

func (c *ingesterClient) PushStream(ctx context.Context, opts ...grpc.CallOption) (PushStreamClient, error) {
	stream, err := c.cc.NewStream(ctx, &serviceDesc.Streams[2], "/"+ServiceName+"/PushStream", opts...)
	if err != nil {
		return nil, err
	}
	return &pushStreamClient{recvClient[StreamPushResponse]{stream}}, nil
}

type pushStreamClient struct {
	recvClient[StreamPushResponse]
}

func (c *pushStreamClient) Send(m *StreamPushRequest) error { return c.SendMsg(m) }

// recvClient receives messages of type M.
type recvClient[M any] struct{ grpc.ClientStream }

func (c *recvClient[M]) Recv() (*M, error) {
	m := new(M)
	if err := c.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}

// sendServer sends messages of type M.
type sendServer[M any] struct{ grpc.ServerStream }

func (s *sendServer[M]) Send(m *M) error { return s.SendMsg(m) }

// serverStreamDesc adapts a server-streaming method whose request is a Req.
func serverStreamDesc[Req any](name string, call func(IngesterServer, *Req, grpc.ServerStream) error) grpc.StreamDesc {
	return grpc.StreamDesc{
		StreamName:    name,
		ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			in := new(Req)
			if err := stream.RecvMsg(in); err != nil {
				return err
			}
			return call(srv.(IngesterServer), in, stream)
		},
	}
}

// unary adapts a typed unary method to grpc's handler signature.
func unary[Req any, Resp any](name string, call func(IngesterServer, context.Context, *Req) (*Resp, error)) grpc.MethodDesc {
	return unaryPooled(name, func() *Req { return new(Req) }, nil, call)
}

// unaryPooled is unary with requests from get, handed to release (when
// not nil) once the method and the interceptors around it have returned.
func unaryPooled[Req any, Resp any](name string, get func() *Req, release func(*Req), call func(IngesterServer, context.Context, *Req) (*Resp, error)) grpc.MethodDesc {
	return grpc.MethodDesc{
		MethodName: name,
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := get()
			if release != nil {
				defer release(in)
			}
			if err := dec(in); err != nil {
				return nil, err
			}
			if interceptor == nil {
				return call(srv.(IngesterServer), ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + ServiceName + "/" + name}
			return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return call(srv.(IngesterServer), ctx, req.(*Req))
			})
		},
	}
}

type queryStreamServer struct{ grpc.ServerStream }

func (s *queryStreamServer) Send(m *prompb.QueryResult) error { return s.SendMsg(m) }

type queryStreamChunksServer struct{ grpc.ServerStream }

func (s *queryStreamChunksServer) Send(m *prompb.ChunkedReadResponse) error {
	return s.SendMsg(m)
}

// queryStreamDesc adapts a server-streaming method that takes a query.
func queryStreamDesc(name string, call func(IngesterServer, *prompb.Query, grpc.ServerStream) error) grpc.StreamDesc {
	return grpc.StreamDesc{
		StreamName:    name,
		ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			in := new(prompb.Query)
			if err := stream.RecvMsg(in); err != nil {
				return err
			}
			return call(srv.(IngesterServer), in, stream)
		},
	}
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*IngesterServer)(nil),
	Methods: []grpc.MethodDesc{
		unaryPooled("Push", GetPushRequest, (*PushRequest).Release, IngesterServer.Push),
		unary("LabelNames", IngesterServer.LabelNames),
		unary("LabelValues", IngesterServer.LabelValues),
		unary("Series", IngesterServer.Series),
		unary("Metadata", IngesterServer.Metadata),
		unary("UserStats", IngesterServer.UserStats),
		queryExemplarsDesc,
		tsdbStatusDesc,
	},
	// The clients refer to these by index.
	Streams: []grpc.StreamDesc{
		queryStreamDesc("QueryStream", func(srv IngesterServer, in *prompb.Query, stream grpc.ServerStream) error {
			return srv.QueryStream(in, &queryStreamServer{stream})
		}),
		queryStreamDesc("QueryStreamChunks", func(srv IngesterServer, in *prompb.Query, stream grpc.ServerStream) error {
			return srv.QueryStreamChunks(in, &queryStreamChunksServer{stream})
		}),
		{
			StreamName:    "PushStream",
			ServerStreams: true,
			ClientStreams: true,
			Handler: func(srv any, stream grpc.ServerStream) error {
				return srv.(IngesterServer).PushStream(&pushStreamServer{stream})
			},
		},
		serverStreamDesc("LabelNamesStream", func(srv IngesterServer, in *LabelNamesRequest, stream grpc.ServerStream) error {
			return srv.LabelNamesStream(in, &sendServer[StringsResponse]{stream})
		}),
		serverStreamDesc("LabelValuesStream", func(srv IngesterServer, in *LabelValuesRequest, stream grpc.ServerStream) error {
			return srv.LabelValuesStream(in, &sendServer[StringsResponse]{stream})
		}),
		serverStreamDesc("SeriesStream", func(srv IngesterServer, in *SeriesRequest, stream grpc.ServerStream) error {
			return srv.SeriesStream(in, &sendServer[SeriesResponse]{stream})
		}),
	},
	Metadata: "ingester.proto",
}
