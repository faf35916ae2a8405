// Package rulerpb is the gRPC contract between rulers: service ruler.Ruler
// with the unary method Rules, as in Cortex, through which a ruler asks the
// others for the tenant's groups they evaluate. ruler.pb.go is generated
// from ruler.proto; service.go holds the hand-written service description.
//
// It holds messages and the service definition only, and must not import
// other packages of this module.
package rulerpb
