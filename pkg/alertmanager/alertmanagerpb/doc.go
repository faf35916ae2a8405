// Package alertmanagerpb is the alertmanager-to-alertmanager gRPC contract:
// API requests forwarded to a tenant's replicas and the replication of
// each tenant's silences and notification log between them. The messages
// are generated from alertmanager.proto (make proto); the gRPC glue is
// service.go.
package alertmanagerpb
