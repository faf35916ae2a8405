// Package ui serves Alertmanager's web UI, the page each tenant opens at
// -http.alertmanager-http-prefix (/alertmanager/): its script calls the
// tenant's Alertmanager v2 API under the same prefix (api/v2/, relative to
// the page), so it needs no configuration of its own.
//
// The assets in static/ are Alertmanager v0.31.1's built UI (its asset
// package), the release Cortex v1.21.1 embeds and serves the same way. They
// are copied here because github.com/prometheus/alertmanager v0.35.0, the
// version this module builds on, does not ship its UI in the Go module: its
// ui package embeds app/dist, which is built by npm and absent from the
// module, so importing it fails with "pattern app/dist: no matching files
// found". static/README.md names the files' origin and licences.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"
)

//go:embed static
var assets embed.FS

// Handler serves the UI's files at the paths Alertmanager's ui.Register
// gives them, under base (the path of the UI's page, without its trailing
// slash: /alertmanager): base/ (the page), base/script.js,
// base/favicon.ico and base/lib/... (style sheets and fonts).
func Handler(base string) http.Handler {
	static, err := fs.Sub(assets, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	index, err := fs.ReadFile(static, "index.html")
	if err != nil {
		panic(err)
	}
	csp := ContentSecurityPolicy(index)
	files := http.FileServerFS(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, base)
		if !ok {
			http.NotFound(w, r)
			return
		}
		var name string
		switch {
		case rest == "/":
			name = "/"
		case rest == "/script.js", rest == "/favicon.ico":
			name = rest
		case strings.HasPrefix(rest, "/lib/"):
			name = path.Clean(rest)
			if !strings.HasPrefix(name, "/lib/") {
				http.NotFound(w, r)
				return
			}
			if st, err := fs.Stat(static, name[1:]); err != nil || st.IsDir() {
				http.NotFound(w, r)
				return
			}
		default:
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		// Alertmanager serves its UI uncached, so that an upgrade is
		// picked up on the next load.
		h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
		h.Set("Pragma", "no-cache")
		h.Set("Expires", "0")
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		r2 := r.Clone(r.Context())
		r2.URL.Path = name
		r2.URL.RawPath = ""
		files.ServeHTTP(w, r2)
	})
}

var inlineScript = regexp.MustCompile(`(?s)<script>(.*?)</script>`)

// ContentSecurityPolicy is the policy the UI is served with: its script,
// style sheets, fonts and API calls come from the same origin, and of
// inline scripts only those of page (the UI's index.html, which starts the
// Elm application) run, named by their SHA-256. The style sheets' icons are
// data: URLs. Nothing may frame the UI.
func ContentSecurityPolicy(page []byte) string {
	var hashes []string
	for _, m := range inlineScript.FindAllSubmatch(page, -1) {
		sum := sha256.Sum256(m[1])
		hashes = append(hashes, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	}
	var b bytes.Buffer
	b.WriteString("default-src 'none'; script-src 'self'")
	for _, h := range hashes {
		b.WriteString(" " + h)
	}
	b.WriteString("; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	return b.String()
}

// RedirectToPage answers a request for the UI's path without its trailing
// slash (-http.alertmanager-http-prefix itself) with a redirect to the page,
// as Alertmanager's router does, so that the page's relative links resolve.
// The Location is relative (the prefix's last element), so that it stays
// right behind a reverse proxy that adds a prefix of its own.
func RedirectToPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Location", path.Base(r.URL.Path)+"/")
	w.WriteHeader(http.StatusMovedPermanently)
}
