//go:build slicelabels || dedupelabels

package ingester

// Push's requests are decoded in place (client.PushRequest): their label
// strings point into a buffer reused once Push returns. Push relies on
// the default labels implementation (stringlabels), whose ScratchBuilder
// and Copy write labels into memory of their own; slicelabels and
// dedupelabels would keep the request's strings in the TSDB head.
var _ = pushNeedsStringLabels // undefined on purpose: build without -tags slicelabels or dedupelabels
