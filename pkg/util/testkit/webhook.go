package testkit

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// AlertWebhook is an HTTPS receiver of Alertmanager webhook notifications
// that records the alert names each URL path receives.
type AlertWebhook struct {
	Server *httptest.Server

	mu  sync.Mutex
	got map[string][]string
}

// NewAlertWebhook starts a receiver on loopback, closed when the test ends.
func NewAlertWebhook(t testing.TB) *AlertWebhook {
	h := &AlertWebhook{got: map[string][]string{}}
	h.Server = httptest.NewTLSServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		var msg struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		_ = json.NewDecoder(r.Body).Decode(&msg)
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, a := range msg.Alerts {
			h.got[r.URL.Path] = append(h.got[r.URL.Path], a.Labels["alertname"])
		}
	}))
	t.Cleanup(h.Server.Close)
	return h
}

// Received returns the alert names path received so far, in order.
func (h *AlertWebhook) Received(path string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got[path])
}

// WaitFor waits until path has received an alert named alertname.
func (h *AlertWebhook) WaitFor(t testing.TB, path, alertname string) {
	t.Helper()
	EventuallyNil(t, 20*time.Second, fmt.Sprintf("webhook %s to receive %q", path, alertname), func() error {
		if got := h.Received(path); !slices.Contains(got, alertname) {
			return fmt.Errorf("it received %v", got)
		}
		return nil
	})
}

// Never fails the test if path has received an alert named alertname.
func (h *AlertWebhook) Never(t testing.TB, path, alertname string) {
	t.Helper()
	if got := h.Received(path); slices.Contains(got, alertname) {
		t.Fatalf("webhook %s received %q, which should have been held back: %v", path, alertname, got)
	}
}

// CAPEM is the receiver's certificate, for clients to trust it.
func (h *AlertWebhook) CAPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.Server.Certificate().Raw}))
}

// Config is an Alertmanager configuration notifying path on the receiver
// quickly: one group per alert name, sent 50ms after its first alert. It
// trusts the receiver's certificate inline, as a tenant's configuration
// must (it may not name files on the alertmanager's host).
func (h *AlertWebhook) Config(path string) string {
	var ca strings.Builder
	for _, l := range strings.SplitAfter(h.CAPEM(), "\n") {
		if l != "" {
			ca.WriteString("          " + l)
		}
	}
	return fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname]
  group_wait: 50ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: %s%s
    send_resolved: false
    http_config:
      tls_config:
        ca: |
%s`, h.Server.URL, path, ca.String())
}
