// Package grpccodec is the gRPC codec every server and client of this
// project uses: plain protobuf on the wire, fast for prompb's messages.
//
// It must not change the wire format: Cortex and Prometheus peers must still
// decode everything it encodes. It must not import other packages of this
// module.
package grpccodec
