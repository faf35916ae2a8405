package distributor

// The decoders themselves are tested in pkg/util/remotewrite.

import (
	"net/http"
	"testing"

	"github.com/klauspost/compress/snappy"

	"github.com/cortex-tls/cortex/pkg/util/remotewrite/rwtest"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// FuzzDecodePush feeds arbitrary bodies through the whole push handler:
// decoding, validation, re-encoding and forwarding never fail other than
// with a 400.
func FuzzDecodePush(f *testing.F) {
	v1, _ := rwtest.V1Request().Marshal()
	v2, _ := rwtest.V2Request().Marshal()
	f.Add(v1, false)
	f.Add(v2, true)
	f.Add(v1[:len(v1)/2], false)
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00}, false)
	c := newCluster(f, clusterOpts{discard: true, limits: func(l *validation.Limits) { l.IngestionRate = 0 }})
	f.Fuzz(func(t *testing.T, b []byte, isV2 bool) {
		header := map[string]string{}
		if isV2 {
			header["Content-Type"] = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
		}
		r := serve(c.handler, snappy.Encode(nil, b), header)
		if r.StatusCode != http.StatusNoContent && r.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d: %s", r.StatusCode, body(t, r))
		}
	})
}
