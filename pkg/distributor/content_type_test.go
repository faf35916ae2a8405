package distributor

import (
	"net/http"
	"strings"
	"testing"
)

// With -distributor.accept-unknown-remote-write-content-type, a push whose
// Content-Type is neither remote write's is read as 1.0, as Cortex before
// 1.21 did; without it, it is answered 415 naming the flag.
func TestUnknownRemoteWriteContentType(t *testing.T) {
	valid := encodeV1(t, manySeries(2))
	text := map[string]string{"Content-Type": "text/plain"}

	strict := newCluster(t, clusterOpts{})
	r := strict.pushRaw(valid, text)
	if b := body(t, r); r.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(b, "-distributor.accept-unknown-remote-write-content-type reads such requests as 1.0") {
		t.Fatalf("without the flag: %d %q, want 415 naming the flag", r.StatusCode, b)
	}

	lenient := newCluster(t, clusterOpts{cfg: func(cfg *Config) { cfg.AcceptUnknownRemoteWriteContentType = true }})
	if r := lenient.pushRaw(valid, text); r.StatusCode != http.StatusNoContent {
		t.Fatalf("with the flag: %d %q, want 204", r.StatusCode, body(t, r))
	}
}
