package client

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TSDBStatusServer answers TSDBStatus: the head statistics of the caller's
// TSDB, each list cut to the request's limit. The ingester implements it;
// an IngesterServer without it answers Unimplemented.
type TSDBStatusServer interface {
	TSDBStatus(context.Context, *TSDBStatusRequest) (*TSDBStatusResponse, error)
}

// TSDBStatus asks the ingester for the head statistics of the tenant in ctx.
func (c *Conn) TSDBStatus(ctx context.Context, in *TSDBStatusRequest, opts ...grpc.CallOption) (*TSDBStatusResponse, error) {
	out := new(TSDBStatusResponse)
	return out, c.conn.Invoke(ctx, "/"+ServiceName+"/TSDBStatus", in, out, opts...)
}

var tsdbStatusDesc = unary("TSDBStatus", func(srv IngesterServer, ctx context.Context, in *TSDBStatusRequest) (*TSDBStatusResponse, error) {
	s, ok := srv.(TSDBStatusServer)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this ingester does not serve TSDB status")
	}
	return s.TSDBStatus(ctx, in)
})
