package bucket

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A request slower than the quantile of the latencies seen is sent again,
// and the second answer is taken while the first is still pending.
func TestHedgedRequests(t *testing.T) {
	var slowCalls atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			_, _ = io.WriteString(w, "fast")
			return
		}
		if slowCalls.Add(1) == 1 {
			// The first attempt never answers: only a hedge can.
			<-r.Context().Done()
			return
		}
		_, _ = io.WriteString(w, "hedged")
	}))
	t.Cleanup(srv.Close)

	cfg := HedgedRequestConfig{Enabled: true, MaxRequests: 2, Quantile: 0.9}
	client := &http.Client{Transport: cfg.RoundTripper()(srv.Client().Transport)}
	get := func(ctx context.Context, path string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		if err != nil {
			return "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	for range 10 {
		if body, err := get(context.Background(), "/fast"); err != nil || body != "fast" {
			t.Fatalf("fast request: %q, %v", body, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body, err := get(ctx, "/slow")
	if err != nil || body != "hedged" {
		t.Fatalf("slow request: %q, %v; want the hedge's answer", body, err)
	}
	if n := slowCalls.Load(); n != 2 {
		t.Fatalf("the server saw %d attempts of the slow request, want 2", n)
	}
}

func TestHedgedRequestConfig(t *testing.T) {
	if (HedgedRequestConfig{MaxRequests: 3, Quantile: 0.9}).RoundTripper() != nil {
		t.Fatal("disabled hedging wraps the transport")
	}
	err := (&HedgedRequestConfig{Enabled: true, Quantile: 1.5}).Validate("store-gateway.")
	if err == nil || !strings.Contains(err.Error(), "-store-gateway.hedged-request.quantile") {
		t.Fatalf("quantile 1.5: %v", err)
	}
}
