package frontend

import (
	"context"

	"google.golang.org/grpc/metadata"
)

// QuerierIDHeader is the gRPC metadata a querier worker names its querier
// with (-querier.id) on its streams, so that a querier's streams count as
// one querier in the tenants' shuffle shards (-frontend.max-queriers-per-tenant).
const QuerierIDHeader = "x-cortex-querier-id"

// maxQuerierIDLength bounds the querier IDs kept.
const maxQuerierIDLength = 256

// QuerierID returns the querier a stream comes from: its QuerierIDHeader,
// else fallback (the peer's address).
func QuerierID(ctx context.Context, fallback string) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(QuerierIDHeader); len(v) > 0 && v[0] != "" && len(v[0]) <= maxQuerierIDLength {
		return v[0]
	}
	return fallback
}
