package rulerpb

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ServiceName is the ruler's gRPC service, as in Cortex.
const ServiceName = "ruler.Ruler"

// RulesMethod is the full name of the Rules method.
const RulesMethod = "/" + ServiceName + "/Rules"

// LivenessCheckMethod is the full name of the LivenessCheck method, which
// -ruler.enable-ha-evaluation's rulers call on the rulers ahead of them for
// a group. Its messages are wire-compatible with Cortex's
// LivenessCheckRequest (empty) and LivenessCheckResponse (int32 state = 1):
// the request is google.protobuf.Empty, the answer an Int32Value holding
// the ruler's dskit service state.
const LivenessCheckMethod = "/" + ServiceName + "/LivenessCheck"

// RulerServer answers other rulers.
type RulerServer interface {
	// Rules returns the groups of the call's tenant this ruler evaluates.
	Rules(context.Context, *RulesRequest) (*RulesResponse, error)
	// LivenessCheck answers the ruler's service state.
	LivenessCheck(context.Context, *emptypb.Empty) (*wrapperspb.Int32Value, error)
}

// RulerClient calls a ruler.
type RulerClient interface {
	Rules(ctx context.Context, in *RulesRequest, opts ...grpc.CallOption) (*RulesResponse, error)
	LivenessCheck(ctx context.Context, in *emptypb.Empty, opts ...grpc.CallOption) (*wrapperspb.Int32Value, error)
}

// RegisterRulerServer registers srv on a gRPC server.
func RegisterRulerServer(s grpc.ServiceRegistrar, srv RulerServer) {
	s.RegisterService(&serviceDesc, srv)
}

// NewRulerClient returns a client over cc.
func NewRulerClient(cc grpc.ClientConnInterface) RulerClient { return &rulerClient{cc} }

type rulerClient struct{ cc grpc.ClientConnInterface }

func (c *rulerClient) Rules(ctx context.Context, in *RulesRequest, opts ...grpc.CallOption) (*RulesResponse, error) {
	out := new(RulesResponse)
	if err := c.cc.Invoke(ctx, RulesMethod, in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *rulerClient) LivenessCheck(ctx context.Context, in *emptypb.Empty, opts ...grpc.CallOption) (*wrapperspb.Int32Value, error) {
	out := new(wrapperspb.Int32Value)
	if err := c.cc.Invoke(ctx, LivenessCheckMethod, in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*RulerServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Rules",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(RulesRequest)
			if err := dec(in); err != nil {
				return nil, err
			}
			if interceptor == nil {
				return srv.(RulerServer).Rules(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: RulesMethod}
			return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return srv.(RulerServer).Rules(ctx, req.(*RulesRequest))
			})
		},
	}, {
		MethodName: "LivenessCheck",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			if interceptor == nil {
				return srv.(RulerServer).LivenessCheck(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: LivenessCheckMethod}
			return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return srv.(RulerServer).LivenessCheck(ctx, req.(*emptypb.Empty))
			})
		},
	}},
	Metadata: "ruler.proto",
}
