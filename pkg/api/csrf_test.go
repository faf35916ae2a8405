package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"

	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// ringWithTwo starts a dskit ring client over an in-memory KV holding the
// instances ing-1 and ing-2.
func ringWithTwo(t *testing.T) (*ring.Ring, *consul.Client) {
	t.Helper()
	kv, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	desc := ring.NewDesc()
	now := time.Now()
	desc.AddIngester("ing-1", "127.0.0.1:9095", "", []uint32{1}, ring.ACTIVE, now, false, time.Time{}, nil)
	desc.AddIngester("ing-2", "127.0.0.1:9096", "", []uint32{2}, ring.ACTIVE, now, false, time.Time{}, nil)
	if err := kv.CAS(context.Background(), "ring", func(any) (any, bool, error) { return desc, false, nil }); err != nil {
		t.Fatal(err)
	}
	r, err := ring.NewWithStoreClientAndStrategy(ring.Config{HeartbeatTimeout: time.Minute, ReplicationFactor: 1}, "ingester", "ring", kv, ring.NewDefaultReplicationStrategy(), nil, log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), r) })
	testkit.Eventually(t, 5*time.Second, "the ring client to see both instances", func() bool { return r.InstancesCount() == 2 })
	return r, kv
}

func inKV(t *testing.T, kv *consul.Client, id string) bool {
	t.Helper()
	v, err := kv.Get(context.Background(), "ring")
	if err != nil {
		t.Fatal(err)
	}
	_, ok := v.(*ring.Desc).Ingesters[id]
	return ok
}

var tokenField = regexp.MustCompile(`<input type="hidden" name="csrf_token" value="([^"]*)">`)

// otherFirstByte is token with its first byte changed: a token that
// differs from the page's in one character.
func otherFirstByte(token string) string {
	if token[0] == 'x' {
		return "y" + token[1:]
	}
	return "x" + token[1:]
}

func TestRingPageForgetNeedsCSRFToken(t *testing.T) {
	r, kv := ringWithTwo(t)
	mux := http.NewServeMux()
	a := New(mux, true, "all", Auth{})
	a.RegisterRing(r)

	code, page := serve(t, mux, http.MethodGet, "/ring")
	if code != http.StatusOK || !strings.Contains(page, "ing-2") {
		t.Fatalf("GET /ring: %d %s", code, page)
	}
	if strings.Contains(page, "CSRF_TOKEN_PLACEHOLDER") {
		t.Fatalf("the page still carries the placeholder:\n%s", page)
	}
	m := tokenField.FindStringSubmatch(page)
	if m == nil || len(m[1]) < 40 {
		t.Fatalf("no token in the form:\n%s", page)
	}
	token := m[1]
	if _, again := serve(t, mux, http.MethodGet, "/ring"); !strings.Contains(again, token) {
		t.Error("the token changed between two loads of the page by the same client")
	}
	// Another page, another token: the token of /ring does not forget
	// through /ingester/ring.
	if _, other := serve(t, mux, http.MethodGet, "/ingester/ring"); strings.Contains(other, token) || tokenField.FindStringSubmatch(other) == nil {
		t.Error("/ingester/ring does not have a token of its own")
	}

	forget := func(path string, form url.Values) (int, string) {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	for name, form := range map[string]url.Values{
		"without a token":         {"forget": {"ing-2"}},
		"with a bad token":        {"forget": {"ing-2"}, "csrf_token": {otherFirstByte(token)}},
		"with the placeholder":    {"forget": {"ing-2"}, "csrf_token": {csrfPlaceholder}},
		"with another page's one": {"forget": {"ing-2"}, "csrf_token": {tokenField.FindStringSubmatch(func() string { _, p := serve(t, mux, http.MethodGet, "/ingester/ring"); return p }())[1]}},
	} {
		code, body := forget("/ring", form)
		if code != http.StatusForbidden || !strings.Contains(body, "csrf_token is missing or not one this process gave") {
			t.Errorf("POST forget %s: %d %q, want 403", name, code, body)
		}
	}
	// The token in the URL instead of the form does not count either.
	if code, _ := forget("/ring?csrf_token="+token, url.Values{"forget": {"ing-2"}}); code != http.StatusForbidden {
		t.Errorf("POST forget with the token in the query: %d, want 403", code)
	}
	if !inKV(t, kv, "ing-2") {
		t.Fatal("a refused POST forgot ing-2")
	}

	if code, body := forget("/ring", url.Values{"forget": {"ing-2"}, "csrf_token": {token}}); code != http.StatusFound {
		t.Fatalf("POST forget with the page's token: %d %q, want dskit's 302", code, body)
	}
	if inKV(t, kv, "ing-2") || !inKV(t, kv, "ing-1") {
		t.Fatal("the POST with the right token did not forget ing-2 alone")
	}
}

func TestCSRFTokenIsPerClientCertificate(t *testing.T) {
	c := newCSRF()
	req := func(cn string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/store-gateway/ring", nil)
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: cn}}}}
		return r
	}
	if first, second := c.token(req("admin")), c.token(req("admin")); first != second {
		t.Fatal("one client's token changes")
	}
	if c.token(req("admin")) == c.token(req("querier")) {
		t.Fatal("two client certificates share a token")
	}
	if newCSRF().token(req("admin")) == c.token(req("admin")) {
		t.Fatal("two processes share a token: the secret is not random")
	}
}

func TestCSRFKeepsStatusAndHeaders(t *testing.T) {
	c := newCSRF()
	h := c.protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, `<input value="`+csrfPlaceholder+`">`)
	}))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/compactor/ring", nil)
	h.ServeHTTP(rec, req)
	want := `<input value="` + c.token(req) + `">`
	if rec.Code != http.StatusTeapot || rec.Header().Get("Content-Type") != "text/html" || rec.Body.String() != want {
		t.Fatalf("got %d %v %q, want 418 text/html %q", rec.Code, rec.Header(), rec.Body.String(), want)
	}
}
