package ui

import (
	"crypto/sha256"
	"encoding/base64"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func TestPageAndScriptServedUnderContentSecurityPolicy(t *testing.T) {
	h := Handler("/alertmanager")
	page := get(t, h, http.MethodGet, "/alertmanager/")
	if page.Code != http.StatusOK || page.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("page: %d %q", page.Code, page.Header().Get("Content-Type"))
	}
	body := page.Body.String()
	for _, want := range []string{"<title>Alertmanager</title>", `<script src="script.js"></script>`, "Elm.Main.init"} {
		if !strings.Contains(body, want) {
			t.Fatalf("page lacks %q:\n%s", want, body)
		}
	}
	csp := page.Header().Get("Content-Security-Policy")
	if !strings.HasPrefix(csp, "default-src 'none'; script-src 'self' 'sha256-") || !strings.Contains(csp, "; connect-src 'self';") || !strings.HasSuffix(csp, "frame-ancestors 'none'") {
		t.Fatalf("Content-Security-Policy %q", csp)
	}
	// Each inline script of the served page is allowed by its hash, and
	// nothing else inline is.
	scripts := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllStringSubmatch(body, -1)
	if len(scripts) != 2 {
		t.Fatalf("%d inline scripts, want the slash fix and the Elm start", len(scripts))
	}
	for _, s := range scripts {
		sum := sha256.Sum256([]byte(s[1]))
		if h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, h) {
			t.Fatalf("policy %q lacks the hash %s of inline script %q", csp, h, s[1])
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Fatalf("policy %q allows unsafe sources", csp)
	}
	if cc := page.Header().Get("Cache-Control"); cc != "no-cache, no-store, must-revalidate" {
		t.Fatalf("Cache-Control %q", cc)
	}

	script := get(t, h, http.MethodGet, "/alertmanager/script.js")
	if script.Code != http.StatusOK || script.Header().Get("Content-Type") != "text/javascript; charset=utf-8" || script.Header().Get("Content-Security-Policy") != csp {
		t.Fatalf("script.js: %d %v", script.Code, script.Header())
	}
	if js := script.Body.String(); !strings.Contains(js, "Elm") || !strings.Contains(js, `"/api/v2"`) {
		t.Fatalf("script.js (%d bytes) is not the Elm application calling api/v2", len(js))
	}
	if head := get(t, h, http.MethodHead, "/alertmanager/script.js"); head.Code != http.StatusOK || head.Body.Len() != 0 {
		t.Fatalf("HEAD script.js: %d, %d bytes", head.Code, head.Body.Len())
	}
}

// TestEveryLinkedFileServed checks that the files the Elm application
// links (its style sheets) and those the style sheets name (fonts) are
// all served, with their content types.
func TestEveryLinkedFileServed(t *testing.T) {
	h := Handler("/alertmanager")
	js := get(t, h, http.MethodGet, "/alertmanager/script.js").Body.String()
	sheets := regexp.MustCompile(`lib/[A-Za-z0-9_./-]+\.css`).FindAllString(js, -1)
	if len(sheets) != 3 {
		t.Fatalf("script.js links %v, want Bootstrap's, Font Awesome's and the date picker's style sheets", sheets)
	}
	wantTypes := map[string]string{
		".css": "text/css; charset=utf-8", ".woff2": "font/woff2", ".woff": "font/woff", ".ttf": "font/ttf",
		".eot": "application/vnd.ms-fontobject", ".svg": "image/svg+xml",
	}
	fonts := 0
	for _, sheet := range sheets {
		rec := get(t, h, http.MethodGet, "/alertmanager/"+sheet)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != wantTypes[".css"] {
			t.Fatalf("%s: %d %q", sheet, rec.Code, rec.Header().Get("Content-Type"))
		}
		for _, m := range regexp.MustCompile(`url\('(\.\./fonts/[^'?#]+)`).FindAllStringSubmatch(rec.Body.String(), -1) {
			font := path.Join("/alertmanager/", path.Dir(sheet), m[1])
			rec := get(t, h, http.MethodGet, font)
			if want := wantTypes[path.Ext(font)]; rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), want) {
				t.Fatalf("%s: %d %q, want 200 %q", font, rec.Code, rec.Header().Get("Content-Type"), want)
			}
			fonts++
		}
	}
	if fonts == 0 {
		t.Fatal("no font named by the style sheets")
	}
	if rec := get(t, h, http.MethodGet, "/alertmanager/favicon.ico"); rec.Code != http.StatusOK || rec.Body.Len() == 0 {
		t.Fatalf("favicon.ico: %d", rec.Code)
	}
}

func TestOnlyTheUIsFilesServed(t *testing.T) {
	h := Handler("/alertmanager")
	for _, p := range []string{
		"/alertmanager/index.html", // the page is only at the prefix
		"/alertmanager/README.md",  // the assets' notes
		"/alertmanager/lib/",       // no directory listings
		"/alertmanager/lib/font-awesome-4.7.0",
		"/alertmanager/lib/../README.md",
		"/alertmanager/lib/bootstrap-4.6.2-dist/css/bootstrap.min.css.map",
		"/other/script.js",
	} {
		if rec := get(t, h, http.MethodGet, p); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, rec.Code)
		}
	}
	if rec := get(t, h, http.MethodPost, "/alertmanager/"); rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
	// Every embedded file but the notes is reachable.
	err := fs.WalkDir(assets, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == "static/README.md" {
			return err
		}
		target := "/alertmanager/" + strings.TrimPrefix(p, "static/")
		if p == "static/index.html" {
			target = "/alertmanager/"
		}
		if rec := get(t, h, http.MethodGet, target); rec.Code != http.StatusOK {
			t.Errorf("GET %s: %d", target, rec.Code)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRedirectToPageIsRelative(t *testing.T) {
	for prefix, want := range map[string]string{"/alertmanager": "alertmanager/", "/ops/am": "am/"} {
		rec := get(t, http.HandlerFunc(RedirectToPage), http.MethodGet, prefix)
		if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != want {
			t.Errorf("%s: %d Location %q, want 301 %q", prefix, rec.Code, rec.Header().Get("Location"), want)
		}
	}
}
