package distributor

import (
	"net/http"
	"strings"
	"testing"

	"github.com/klauspost/compress/snappy"

	"github.com/cortex-tls/cortex/pkg/util/remotewrite/rwtest"
)

func TestPushV2Disabled(t *testing.T) {
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.RemoteWriteV2Enabled = false }})
	r := c.pushV2(rwtest.V2Request())
	b := body(t, r)
	if r.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(b, "io.prometheus.write.v2.Request protobuf message is not accepted by this server (-distributor.remote-writev2-enabled is false)") {
		t.Fatalf("got %d %q, want 415 naming the flag", r.StatusCode, b)
	}
	for _, h := range []string{headerSamplesWritten, headerHistogramsWritten, headerExemplarsWritten} {
		if got := r.Header.Get(h); got != "0" {
			t.Errorf("%s = %q, want 0", h, got)
		}
	}
	if n, _ := c.stored(`__name__="http_requests_total",job="api"`); n != 0 {
		t.Errorf("stored on %d ingesters, want none", n)
	}
	// 1.0 is still served.
	if r := c.push(manySeries(2)); r.StatusCode != http.StatusNoContent {
		t.Fatalf("1.0 push: got %d %s, want 204", r.StatusCode, body(t, r))
	}
}

func TestPushV2WrittenHeadersOnRefusals(t *testing.T) {
	c := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.MaxRecvMsgSize = 16 }})
	for name, header := range map[string]map[string]string{
		"too large":    nil,
		"bad encoding": {"Content-Encoding": "gzip"},
	} {
		t.Run(name, func(t *testing.T) {
			raw, err := rwtest.V2Request().Marshal()
			if err != nil {
				t.Fatal(err)
			}
			h := map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"}
			for k, v := range header {
				h[k] = v
			}
			r := c.pushRaw(snappy.Encode(nil, raw), h)
			if r.StatusCode/100 != 4 {
				t.Fatalf("got %d %s, want a 4xx", r.StatusCode, body(t, r))
			}
			if got := r.Header.Get(headerSamplesWritten); got != "0" {
				t.Errorf("%s = %q, want 0", headerSamplesWritten, got)
			}
		})
	}
}
