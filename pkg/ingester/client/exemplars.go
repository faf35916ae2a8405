package client

import (
	"context"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ExemplarQuerier answers QueryExemplars: for each query of the request
// (its matchers and its time range), the exemplars of the matching series
// as TimeSeries holding labels and exemplars only. The ingester implements
// it; an IngesterServer without it answers Unimplemented.
type ExemplarQuerier interface {
	QueryExemplars(context.Context, *prompb.ReadRequest) (*prompb.QueryResult, error)
}

// QueryExemplars asks the ingester for the exemplars of the tenant in ctx.
func (c *Conn) QueryExemplars(ctx context.Context, in *prompb.ReadRequest, opts ...grpc.CallOption) (*prompb.QueryResult, error) {
	out := new(prompb.QueryResult)
	return out, c.conn.Invoke(ctx, "/"+ServiceName+"/QueryExemplars", in, out, opts...)
}

var queryExemplarsDesc = unary("QueryExemplars", func(srv IngesterServer, ctx context.Context, in *prompb.ReadRequest) (*prompb.QueryResult, error) {
	q, ok := srv.(ExemplarQuerier)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this ingester does not serve exemplars")
	}
	return q.QueryExemplars(ctx, in)
})
