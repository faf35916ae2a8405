// Package storegateway serves the series of TSDB blocks that ingesters
// (and later the compactor) uploaded to object storage: it is the bucket
// store behind Cortex's store-gateway.
//
// A BucketStore discovers every tenant's blocks in the bucket
// (<tenant>/<ULID>/meta.json), keeps a local copy of each block's index
// under -blocks-storage.bucket-store.sync-dir, and answers queries with
// Prometheus storage.Queriers that look series up in those local indexes and
// read only the chunks they need from the bucket by byte ranges.
//
// The store-gateway serves the store over gRPC as cortex.StoreGateway
// (RegisterStoreGatewayServer, NewStoreGatewayServer): Series streams the
// stored chunks of the matching series in batches of the size the querier
// asks for (-querier.store-gateway-series-batch-size), and LabelNames and
// LabelValues answer label queries, all with the ingesters' messages and for
// the tenant in the call's X-Scope-OrgID metadata. Queriers dial it with pkg/storegateway/client.
//
// What it must not do: write to the bucket (blocks belong to the ingesters
// and the compactor; the store-gateway only reads them), read a block that
// is still being uploaded (no meta.json yet) or marked for deletion, mix
// tenants (each query names one tenant and sees only that tenant's blocks),
// or delete anything in the sync directory that is not a block directory it
// created.
//
// Thanos' bucket store, which Cortex uses, does not compile against this
// module's Prometheus version, and Prometheus has no index-header format,
// so the whole index file is kept locally instead of an index-header.
package storegateway
