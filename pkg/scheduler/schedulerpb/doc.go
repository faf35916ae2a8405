// Package schedulerpb is the gRPC contract of the query-scheduler, as
// Cortex's: the services SchedulerForFrontend (FrontendLoop) and
// SchedulerForQuerier (QuerierLoop) the scheduler serves, and
// FrontendForQuerier (QueryResult) the query-frontend serves for the
// answers. scheduler.pb.go is generated from scheduler.proto; service.go
// holds the hand-written service descriptions, convert.go the copies
// between these HTTP messages and the query-frontend's (frontendpb).
//
// It holds messages and service definitions only: no queueing or querying
// logic; of this module it imports frontendpb alone.
package schedulerpb
