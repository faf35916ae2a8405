package tracing

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// clearJaegerEnv unsets every JAEGER_* variable this package reads, for
// the test.
func clearJaegerEnv(t *testing.T) {
	t.Helper()
	for _, v := range append(jaegerEnv, "JAEGER_SAMPLER_TYPE", "JAEGER_SAMPLER_PARAM", "JAEGER_TAGS", "JAEGER_USER", "JAEGER_PASSWORD", "JAEGER_REPORTER_MAX_QUEUE_SIZE") {
		t.Setenv(v, "")
	}
}

func TestJaegerTracesNothingWithoutItsVariables(t *testing.T) {
	clearJaegerEnv(t)
	stop, err := setup(t, defaults(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stop(context.Background()) }()
	if Enabled() {
		t.Fatal("-tracing.type=jaeger without JAEGER_* variables traces")
	}
}

func TestJaegerRefusesBadVariables(t *testing.T) {
	for _, tc := range []struct{ env, value, want string }{
		{"JAEGER_SAMPLER_PARAM", "half", `JAEGER_SAMPLER_PARAM="half": want a number`},
		{"JAEGER_SAMPLER_TYPE", "ratelimiting", `JAEGER_SAMPLER_TYPE="ratelimiting": want const, probabilistic or remote`},
		{"JAEGER_TAGS", "zone", `JAEGER_TAGS: "zone" is not key=value`},
		{"JAEGER_ENDPOINT", "collector:14268", `JAEGER_ENDPOINT="collector:14268": want the collector's http:// or https:// URL`},
		{"JAEGER_AGENT_PORT", "agent", `JAEGER_AGENT_PORT="agent": want a port number`},
		{"JAEGER_REPORTER_MAX_QUEUE_SIZE", "-1", `JAEGER_REPORTER_MAX_QUEUE_SIZE="-1": want a positive number of spans`},
	} {
		t.Run(tc.env, func(t *testing.T) {
			clearJaegerEnv(t)
			t.Setenv("JAEGER_AGENT_HOST", "127.0.0.1")
			t.Setenv(tc.env, tc.value)
			stop, err := setup(t, defaults(t))
			if err == nil {
				_ = stop(context.Background())
			}
			if err == nil || !strings.Contains(err.Error(), "-tracing.type=jaeger: "+tc.want) {
				t.Fatalf("%s=%s: %v, want %q", tc.env, tc.value, err, tc.want)
			}
		})
	}
}

// A Jaeger collector (JAEGER_ENDPOINT) receives the spans in Thrift over
// HTTP with JAEGER_USER's credentials, and the trace context goes out in
// both W3C's and Jaeger's headers.
func TestJaegerExportsToTheCollector(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies [][]byte
		auth   []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		user, pass, _ := r.BasicAuth()
		mu.Lock()
		bodies = append(bodies, b)
		auth = append(auth, r.Header.Get("Content-Type")+" "+user+":"+pass)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	clearJaegerEnv(t)
	t.Setenv("JAEGER_ENDPOINT", srv.URL+"/api/traces")
	t.Setenv("JAEGER_USER", "cortex")
	t.Setenv("JAEGER_PASSWORD", "pw")
	t.Setenv("JAEGER_SAMPLER_TYPE", "const")
	t.Setenv("JAEGER_SAMPLER_PARAM", "1")
	t.Setenv("JAEGER_TAGS", "cluster=eu-1,zone=${TEST_ZONE:zone-a}")
	stop, err := setup(t, defaults(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, sp := startSpan(context.Background(), "jaeger-exported-span")
	h := http.Header{}
	InjectHeaders(ctx, h)
	sp.End()
	if h.Get("Traceparent") == "" || h.Get("Uber-Trace-Id") == "" {
		t.Errorf("injected %v, want traceparent and uber-trace-id", h)
	}
	if err := stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 1 || auth[0] != "application/x-thrift cortex:pw" {
		t.Fatalf("%d posts (%v), want one in Thrift with JAEGER_USER's credentials", len(bodies), auth)
	}
	for _, want := range []string{"jaeger-exported-span", "cortex-test", "eu-1", "zone-a"} {
		if !bytes.Contains(bodies[0], []byte(want)) {
			t.Errorf("the batch lacks %q", want)
		}
	}
}

// The Jaeger agent (JAEGER_AGENT_HOST, JAEGER_AGENT_PORT) receives the
// spans over UDP.
func TestJaegerExportsToTheAgent(t *testing.T) {
	agent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	host, port, _ := net.SplitHostPort(agent.LocalAddr().String())
	clearJaegerEnv(t)
	t.Setenv("JAEGER_AGENT_HOST", host)
	t.Setenv("JAEGER_AGENT_PORT", port)
	t.Setenv("JAEGER_SAMPLER_TYPE", "const")
	t.Setenv("JAEGER_SAMPLER_PARAM", "1")
	stop, err := setup(t, defaults(t))
	if err != nil {
		t.Fatal(err)
	}
	_, sp := startSpan(context.Background(), "agent-exported-span")
	sp.End()
	if err := stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65000)
	_ = agent.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := agent.ReadFrom(buf)
	if err != nil {
		t.Fatalf("the agent received nothing: %v", err)
	}
	if !bytes.Contains(buf[:n], []byte("agent-exported-span")) {
		t.Fatalf("the agent's datagram lacks the span: %q", buf[:n])
	}
}
