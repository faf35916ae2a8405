package schedulerpb

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Service names, as in Cortex.
const (
	SchedulerForFrontendName = "schedulerpb.SchedulerForFrontend"
	SchedulerForQuerierName  = "schedulerpb.SchedulerForQuerier"
	FrontendForQuerierName   = "frontendv2pb.FrontendForQuerier"
)

// SchedulerForFrontendServer takes the queries of query-frontends.
type SchedulerForFrontendServer interface {
	// FrontendLoop is one frontend stream: an INIT, then ENQUEUE and
	// CANCEL messages, each answered by a SchedulerToFrontend.
	FrontendLoop(FrontendLoopServer) error
}

// FrontendLoopServer is the scheduler's side of a frontend stream.
type FrontendLoopServer interface {
	Send(*SchedulerToFrontend) error
	Recv() (*FrontendToScheduler, error)
	grpc.ServerStream
}

// FrontendLoopClient is the frontend's side of the stream.
type FrontendLoopClient interface {
	Send(*FrontendToScheduler) error
	Recv() (*SchedulerToFrontend, error)
	grpc.ClientStream
}

// SchedulerForQuerierServer hands queries to querier workers.
type SchedulerForQuerierServer interface {
	// QuerierLoop is one querier worker stream: the worker names itself,
	// then the scheduler sends a query and the worker says when it is done
	// with it, and so on.
	QuerierLoop(QuerierLoopServer) error
	// NotifyQuerierShutdown is a querier (its -querier.id) saying it shuts
	// down: it leaves the tenants' shards at once rather than after the
	// querier forget delay, as Cortex's NotifyQuerierShutdown.
	NotifyQuerierShutdown(context.Context, *wrapperspb.StringValue) (*emptypb.Empty, error)
}

// QuerierLoopServer is the scheduler's side of a querier stream.
type QuerierLoopServer interface {
	Send(*SchedulerToQuerier) error
	Recv() (*QuerierToScheduler, error)
	grpc.ServerStream
}

// QuerierLoopClient is the querier's side of the stream.
type QuerierLoopClient interface {
	Send(*QuerierToScheduler) error
	Recv() (*SchedulerToQuerier, error)
	grpc.ClientStream
}

// FrontendForQuerierServer takes the answers of queries, on the frontend.
type FrontendForQuerierServer interface {
	QueryResult(context.Context, *QueryResultRequest) (*QueryResultResponse, error)
}

// RegisterSchedulerForFrontendServer registers srv on a gRPC server.
func RegisterSchedulerForFrontendServer(s grpc.ServiceRegistrar, srv SchedulerForFrontendServer) {
	s.RegisterService(&schedulerForFrontendDesc, srv)
}

// RegisterSchedulerForQuerierServer registers srv on a gRPC server.
func RegisterSchedulerForQuerierServer(s grpc.ServiceRegistrar, srv SchedulerForQuerierServer) {
	s.RegisterService(&schedulerForQuerierDesc, srv)
}

// RegisterFrontendForQuerierServer registers srv on a gRPC server.
func RegisterFrontendForQuerierServer(s grpc.ServiceRegistrar, srv FrontendForQuerierServer) {
	s.RegisterService(&frontendForQuerierDesc, srv)
}

// FrontendLoop opens a frontend stream to a scheduler.
func FrontendLoop(ctx context.Context, cc grpc.ClientConnInterface, opts ...grpc.CallOption) (FrontendLoopClient, error) {
	s, err := cc.NewStream(ctx, &schedulerForFrontendDesc.Streams[0], "/"+SchedulerForFrontendName+"/FrontendLoop", opts...)
	if err != nil {
		return nil, err
	}
	return &frontendLoopClient{s}, nil
}

// QuerierLoop opens a querier stream to a scheduler.
func QuerierLoop(ctx context.Context, cc grpc.ClientConnInterface, opts ...grpc.CallOption) (QuerierLoopClient, error) {
	s, err := cc.NewStream(ctx, &schedulerForQuerierDesc.Streams[0], "/"+SchedulerForQuerierName+"/QuerierLoop", opts...)
	if err != nil {
		return nil, err
	}
	return &querierLoopClient{s}, nil
}

// NotifyQuerierShutdown tells a scheduler that querierID shuts down.
func NotifyQuerierShutdown(ctx context.Context, cc grpc.ClientConnInterface, querierID string, opts ...grpc.CallOption) error {
	return cc.Invoke(ctx, "/"+SchedulerForQuerierName+"/NotifyQuerierShutdown", wrapperspb.String(querierID), new(emptypb.Empty), opts...)
}

// QueryResult sends a query's answer to the frontend that asked.
func QueryResult(ctx context.Context, cc grpc.ClientConnInterface, in *QueryResultRequest, opts ...grpc.CallOption) (*QueryResultResponse, error) {
	out := new(QueryResultResponse)
	if err := cc.Invoke(ctx, "/"+FrontendForQuerierName+"/QueryResult", in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

type frontendLoopClient struct{ grpc.ClientStream }

func (c *frontendLoopClient) Send(m *FrontendToScheduler) error { return c.SendMsg(m) }
func (c *frontendLoopClient) Recv() (*SchedulerToFrontend, error) {
	m := new(SchedulerToFrontend)
	if err := c.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}

type frontendLoopServer struct{ grpc.ServerStream }

func (s *frontendLoopServer) Send(m *SchedulerToFrontend) error { return s.SendMsg(m) }
func (s *frontendLoopServer) Recv() (*FrontendToScheduler, error) {
	m := new(FrontendToScheduler)
	if err := s.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}

type querierLoopClient struct{ grpc.ClientStream }

func (c *querierLoopClient) Send(m *QuerierToScheduler) error { return c.SendMsg(m) }
func (c *querierLoopClient) Recv() (*SchedulerToQuerier, error) {
	m := new(SchedulerToQuerier)
	if err := c.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}

type querierLoopServer struct{ grpc.ServerStream }

func (s *querierLoopServer) Send(m *SchedulerToQuerier) error { return s.SendMsg(m) }
func (s *querierLoopServer) Recv() (*QuerierToScheduler, error) {
	m := new(QuerierToScheduler)
	if err := s.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}

var schedulerForFrontendDesc = grpc.ServiceDesc{
	ServiceName: SchedulerForFrontendName,
	HandlerType: (*SchedulerForFrontendServer)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "FrontendLoop",
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			return srv.(SchedulerForFrontendServer).FrontendLoop(&frontendLoopServer{stream})
		},
	}},
	Metadata: "scheduler.proto",
}

var schedulerForQuerierDesc = grpc.ServiceDesc{
	ServiceName: SchedulerForQuerierName,
	HandlerType: (*SchedulerForQuerierServer)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "QuerierLoop",
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			return srv.(SchedulerForQuerierServer).QuerierLoop(&querierLoopServer{stream})
		},
	}},
	Methods: []grpc.MethodDesc{{
		MethodName: "NotifyQuerierShutdown",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			call := func(ctx context.Context, req any) (any, error) {
				return srv.(SchedulerForQuerierServer).NotifyQuerierShutdown(ctx, req.(*wrapperspb.StringValue))
			}
			if interceptor == nil {
				return call(ctx, in)
			}
			return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + SchedulerForQuerierName + "/NotifyQuerierShutdown"}, call)
		},
	}},
	Metadata: "scheduler.proto",
}

var frontendForQuerierDesc = grpc.ServiceDesc{
	ServiceName: FrontendForQuerierName,
	HandlerType: (*FrontendForQuerierServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "QueryResult",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(QueryResultRequest)
			if err := dec(in); err != nil {
				return nil, err
			}
			if interceptor == nil {
				return srv.(FrontendForQuerierServer).QueryResult(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + FrontendForQuerierName + "/QueryResult"}
			return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return srv.(FrontendForQuerierServer).QueryResult(ctx, req.(*QueryResultRequest))
			})
		},
	}},
	Metadata: "scheduler.proto",
}
