package server

import (
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkRequestLog compares a request through the HTTP port's request
// log, at the default info level (the debug line is dropped before it is
// formatted), with the bare handler.
func BenchmarkRequestLog(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("bench", flag.PanicOnError))
	logger := slog.New(slog.NewTextHandler(discardWriter{}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l, err := newRequestLog(cfg, logger)
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/push", nil)
	req.Header.Set("X-Scope-OrgID", "tenant-a")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"bare", ok}, {"logged", l.wrap(ok)}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			w := httptest.NewRecorder()
			for b.Loop() {
				bc.h.ServeHTTP(w, req)
			}
		})
	}
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
