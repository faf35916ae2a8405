// Package remotewrite decodes Prometheus remote-write 1.0 and 2.0
// requests without copying their strings.
//
// Decoded strings alias the request buffer: this package must not keep them
// past a request, and its callers copy whatever they keep. It must not
// import other packages of this module.
package remotewrite
