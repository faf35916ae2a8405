// Package client is the ingester's gRPC contract and the client side of it:
// the service description and messages (ingester.pb.go), the push request
// decoded in place from a pooled buffer, matcher conversions, and the pool
// of TLS clients (-ingester.client.*) that distributors and queriers dial
// ingesters with.
//
// Ingesters implement IngesterServer from here, so this package must not
// import pkg/ingester, pkg/distributor or pkg/querier.
package client
