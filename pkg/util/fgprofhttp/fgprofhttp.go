// Package fgprofhttp serves fgprof's wall-clock profile (on-CPU and
// off-CPU time of every goroutine) over HTTP, as Cortex's /debug/fgprof,
// with the bounds net/http/pprof's CPU profile has and fgprof's own
// handler lacks: the profile must end before the server's write timeout,
// it stops when the client goes away, and one runs at a time.
package fgprofhttp

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/felixge/fgprof"
)

// defaultSeconds is fgprof's default profile length.
const defaultSeconds = 30

// Handler profiles every goroutine for ?seconds= (30 by default) and
// answers the profile in pprof format, or ?format=folded for Brendan
// Gregg's folded stacks.
func Handler() http.Handler {
	busy := make(chan struct{}, 1)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seconds := defaultSeconds
		if s := r.URL.Query().Get("seconds"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				http.Error(w, fmt.Sprintf("seconds=%q: want a positive whole number of seconds", s), http.StatusBadRequest)
				return
			}
			seconds = n
		}
		d := time.Duration(seconds) * time.Second
		if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok && srv.WriteTimeout > 0 && d >= srv.WriteTimeout {
			http.Error(w, fmt.Sprintf("a profile of %v would outlast the HTTP server's write timeout %v (-server.http-write-timeout): ask for fewer seconds", d, srv.WriteTimeout), http.StatusBadRequest)
			return
		}
		format := fgprof.Format(r.URL.Query().Get("format"))
		switch format {
		case "":
			format = fgprof.FormatPprof
		case fgprof.FormatPprof, fgprof.FormatFolded:
		default:
			http.Error(w, fmt.Sprintf("format=%q: want %s or %s", format, fgprof.FormatPprof, fgprof.FormatFolded), http.StatusBadRequest)
			return
		}
		select {
		case busy <- struct{}{}:
			defer func() { <-busy }()
		default:
			http.Error(w, "another fgprof profile is running: retry once it is done", http.StatusTooManyRequests)
			return
		}
		if format == fgprof.FormatPprof {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Disposition", `attachment; filename="fgprof"`)
		} else {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		}
		stop := fgprof.Start(w, format)
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		// stop writes the profile; a client gone away cannot be told of
		// a failed write.
		_ = stop()
	})
}
