package ingester

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/auth"
	"github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

// PushStream stores the pushes of a distributor's PushStream
// (-distributor.use-stream-push). The stream is opened as a distributor's
// stream worker (Cortex's X-Scope-OrgID "ingester-<addr>-stream-push-worker-<n>"),
// whose messages may be of any tenant, or as a tenant, whose messages must
// all be its own. Each message then gets what a Push call of its tenant
// gets: the tenant ID's validation, the client identity's tenants
// (-auth.client-tenants-file), the signature with
// -distributor.sign-write-requests, and every limit of Push. A refused
// message is answered with its error and the stream goes on. With
// -distributor.sign-write-requests-keys the stream itself must be signed
// with one of the keys.
func (i *Ingester) PushStream(stream client.PushStreamServer) error {
	ctx := stream.Context()
	orgID, err := tenant.ID(ctx)
	if err != nil {
		return tenant.GRPCError(err)
	}
	if len(i.cfg.StreamSigningKeys) > 0 {
		if err := client.VerifyStreamSignature(ctx, orgID, i.cfg.StreamSigningKeys); err != nil {
			return err
		}
	}
	anyTenant := client.IsStreamWorkerOrgID(orgID)
	md, _ := metadata.FromIncomingContext(ctx)
	return client.ServePushStream(stream, func(ctx context.Context, m *client.StreamPushMessage) (*client.PushResponse, error) {
		if err := tenant.Valid(m.TenantID); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "push stream message %d: %v", m.ID, err)
		}
		if err := auth.CheckMessageTenant(ctx, m.TenantID); err != nil {
			return nil, err
		}
		if !anyTenant && m.TenantID != orgID {
			return nil, status.Errorf(codes.PermissionDenied, "tenant ID mismatch: the push stream was opened as tenant %q but its message %d is of tenant %q", orgID, m.ID, m.TenantID)
		}
		return i.Push(pushContext(ctx, md, m), m.Request)
	})
}

// pushContext is the context of a Push call carrying the message's tenant
// and signature.
func pushContext(ctx context.Context, md metadata.MD, m *client.StreamPushMessage) context.Context {
	md = md.Copy()
	md.Delete(client.SignatureHeader)
	if m.Signature != "" {
		md.Set(client.SignatureHeader, m.Signature)
	}
	return tenant.Inject(metadata.NewIncomingContext(ctx, md), m.TenantID)
}

// LabelNamesStream answers as LabelNames, MetadataStreamBatchSize names a message.
func (i *Ingester) LabelNamesStream(req *client.LabelNamesRequest, stream client.StringsStreamServer) error {
	resp, err := i.LabelNames(stream.Context(), req)
	if err != nil {
		return err
	}
	return client.SendInBatches(resp.Values, func(b []string) error { return stream.Send(&client.StringsResponse{Values: b}) })
}

// LabelValuesStream answers as LabelValues, MetadataStreamBatchSize values a message.
func (i *Ingester) LabelValuesStream(req *client.LabelValuesRequest, stream client.StringsStreamServer) error {
	resp, err := i.LabelValues(stream.Context(), req)
	if err != nil {
		return err
	}
	return client.SendInBatches(resp.Values, func(b []string) error { return stream.Send(&client.StringsResponse{Values: b}) })
}

// SeriesStream answers as Series, MetadataStreamBatchSize label sets a message.
func (i *Ingester) SeriesStream(req *client.SeriesRequest, stream client.SeriesStreamServer) error {
	resp, err := i.Series(stream.Context(), req)
	if err != nil {
		return err
	}
	return client.SendInBatches(resp.Series, func(b []*client.LabelSet) error { return stream.Send(&client.SeriesResponse{Series: b}) })
}
