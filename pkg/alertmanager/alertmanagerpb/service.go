package alertmanagerpb

import (
	"context"

	"google.golang.org/grpc"
)

// ServiceName is the alertmanager's gRPC service, as in Cortex.
const ServiceName = "alertmanagerpb.Alertmanager"

// The full names of the methods.
const (
	HandleRequestMethod = "/" + ServiceName + "/HandleRequest"
	UpdateStateMethod   = "/" + ServiceName + "/UpdateState"
	ReadStateMethod     = "/" + ServiceName + "/ReadState"
)

// AlertmanagerServer answers other alertmanagers, for the tenant named in
// the call's metadata.
type AlertmanagerServer interface {
	// HandleRequest serves a tenant's API request forwarded by another
	// alertmanager.
	HandleRequest(context.Context, *HTTPRequest) (*HTTPResponse, error)
	// UpdateState merges a part of the tenant's state sent by a replica.
	UpdateState(context.Context, *Part) (*UpdateStateResponse, error)
	// ReadState returns the tenant's full state.
	ReadState(context.Context, *ReadStateRequest) (*ReadStateResponse, error)
}

// AlertmanagerClient calls an alertmanager.
type AlertmanagerClient interface {
	HandleRequest(ctx context.Context, in *HTTPRequest, opts ...grpc.CallOption) (*HTTPResponse, error)
	UpdateState(ctx context.Context, in *Part, opts ...grpc.CallOption) (*UpdateStateResponse, error)
	ReadState(ctx context.Context, in *ReadStateRequest, opts ...grpc.CallOption) (*ReadStateResponse, error)
}

// RegisterAlertmanagerServer registers srv on a gRPC server.
func RegisterAlertmanagerServer(s grpc.ServiceRegistrar, srv AlertmanagerServer) {
	s.RegisterService(&serviceDesc, srv)
}

// NewAlertmanagerClient returns a client over cc.
func NewAlertmanagerClient(cc grpc.ClientConnInterface) AlertmanagerClient {
	return &alertmanagerClient{cc}
}

type alertmanagerClient struct{ cc grpc.ClientConnInterface }

func (c *alertmanagerClient) HandleRequest(ctx context.Context, in *HTTPRequest, opts ...grpc.CallOption) (*HTTPResponse, error) {
	out := new(HTTPResponse)
	if err := c.cc.Invoke(ctx, HandleRequestMethod, in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *alertmanagerClient) UpdateState(ctx context.Context, in *Part, opts ...grpc.CallOption) (*UpdateStateResponse, error) {
	out := new(UpdateStateResponse)
	if err := c.cc.Invoke(ctx, UpdateStateMethod, in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *alertmanagerClient) ReadState(ctx context.Context, in *ReadStateRequest, opts ...grpc.CallOption) (*ReadStateResponse, error) {
	out := new(ReadStateResponse)
	if err := c.cc.Invoke(ctx, ReadStateMethod, in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

// unary is the handler of one method taking In.
func unary[In any](name string, call func(AlertmanagerServer, context.Context, *In) (any, error)) grpc.MethodDesc {
	full := "/" + ServiceName + "/" + name
	return grpc.MethodDesc{
		MethodName: name,
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(In)
			if err := dec(in); err != nil {
				return nil, err
			}
			if interceptor == nil {
				return call(srv.(AlertmanagerServer), ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: full}
			return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return call(srv.(AlertmanagerServer), ctx, req.(*In))
			})
		},
	}
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*AlertmanagerServer)(nil),
	Methods: []grpc.MethodDesc{
		unary("HandleRequest", func(s AlertmanagerServer, ctx context.Context, in *HTTPRequest) (any, error) {
			return s.HandleRequest(ctx, in)
		}),
		unary("UpdateState", func(s AlertmanagerServer, ctx context.Context, in *Part) (any, error) { return s.UpdateState(ctx, in) }),
		unary("ReadState", func(s AlertmanagerServer, ctx context.Context, in *ReadStateRequest) (any, error) {
			return s.ReadState(ctx, in)
		}),
	},
	Metadata: "alertmanager.proto",
}
