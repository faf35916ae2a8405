// Package frontendpb is the gRPC contract between the query-frontend and the
// querier workers: HTTP requests and responses carried over one
// bidirectional stream per worker (service cortex.Frontend, as in Cortex).
// frontend.pb.go is generated from frontend.proto; service.go holds the
// hand-written service description and header conversions.
//
// It holds messages and the service definition only: no queueing or
// querying logic, and it must not import other packages of this module.
package frontendpb
