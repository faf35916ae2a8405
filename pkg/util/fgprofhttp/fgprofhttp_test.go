package fgprofhttp

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestFoldedProfileOfOneSecond(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	code, body := get(t, srv.Client(), srv.URL+"?seconds=1&format=folded")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	// The sampler sees this test's goroutine waiting for the answer.
	if !strings.Contains(body, "TestFoldedProfileOfOneSecond") {
		t.Fatalf("folded stacks without the waiting test goroutine:\n%.2000s", body)
	}
}

func TestBadRequests(t *testing.T) {
	srv := httptest.NewUnstartedServer(Handler())
	srv.Config.WriteTimeout = 10 * time.Second
	srv.Start()
	defer srv.Close()
	for _, tc := range []struct{ query, want string }{
		{"seconds=0", `seconds="0": want a positive whole number of seconds`},
		{"seconds=x", `seconds="x": want a positive whole number of seconds`},
		{"seconds=1&format=svg", `format="svg": want pprof or folded`},
		// 30s by default: past the write timeout, as net/http/pprof's CPU profile.
		{"", "a profile of 30s would outlast the HTTP server's write timeout 10s (-server.http-write-timeout)"},
		{"seconds=10", "a profile of 10s would outlast"},
	} {
		code, body := get(t, srv.Client(), srv.URL+"?"+tc.query)
		if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("?%s: %d %q, want 400 %q", tc.query, code, body, tc.want)
		}
	}
}

func TestOneProfileAtATimeAndClientGoneStopsIt(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Retried while a poll below holds the slot; it then runs until
		// cancelled.
		for {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"?seconds=600", nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusTooManyRequests {
				return
			}
		}
	}()
	// Poll until the long profile holds the slot.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get(t, srv.Client(), srv.URL+"?seconds=1")
		if code == http.StatusTooManyRequests {
			if !strings.Contains(body, "another fgprof profile is running") {
				t.Fatalf("429 body %q", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a second profile beside a running one: %d %q, want 429", code, body)
		}
	}
	cancel()
	<-done
	// The slot frees once the handler sees its client gone.
	deadline = time.Now().Add(10 * time.Second)
	for {
		code, body := get(t, srv.Client(), srv.URL+"?seconds=1&format=folded")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the client went away: %d %q, want the slot free", code, body)
		}
	}
}
