package api

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestNotAllowedSaysWhichMethod: a route's other methods answer 405 with
// its own text and Allow header, behind the route's every-tenant check.
func TestNotAllowedSaysWhichMethod(t *testing.T) {
	mux := http.NewServeMux()
	// The rights of an identity given only its own tenant.
	denied := func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "forbidden", http.StatusForbidden)
		})
	}
	a := New(mux, true, "ingester", Auth{})
	a.route(Route{Module: "m", Methods: post, Path: "/change", NotAllowed: "changing needs POST"}, echoTenant)
	guarded := New(http.NewServeMux(), true, "ingester", Auth{AllTenants: denied})
	guarded.route(Route{Module: "m", Methods: post, Path: "/change", AllTenants: true, NotAllowed: "changing needs POST"}, echoTenant)

	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		req := httptest.NewRequest(m, "/change", nil)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusMethodNotAllowed || rec.Body.String() != "changing needs POST\n" || rec.Header().Get("Allow") != "POST" {
			t.Errorf("%s: %d %q Allow %q, want 405 with the route's text and Allow: POST", m, rec.Code, rec.Body.String(), rec.Header().Get("Allow"))
		}
	}
	if code, body := serve(t, mux, http.MethodPost, "/change"); code != http.StatusOK || body != "tenant=none" {
		t.Errorf("POST: %d %q", code, body)
	}
	if code, body := serve(t, guarded.mux, http.MethodGet, "/change"); code != http.StatusForbidden || body != "forbidden\n" {
		t.Errorf("GET by an identity without every tenant: %d %q, want 403", code, body)
	}
	if got := guarded.Routes(); len(got) != 1 || got[0].Path != "/change" || len(got[0].Methods) != 1 {
		t.Errorf("routes %+v: the 405 pattern is not a route of its own", got)
	}
}

// TestSameOriginOnlyRefusesCrossSitePosts: a POST a browser marks as
// cross-site is refused; same-origin ones and those of other clients pass.
func TestSameOriginOnlyRefusesCrossSitePosts(t *testing.T) {
	h := sameOriginOnly(echoTenant)
	for _, tc := range []struct {
		method string
		header []string
		want   int
	}{
		{http.MethodPost, []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{http.MethodPost, []string{"Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{http.MethodPost, []string{"Origin", "https://elsewhere.example"}, http.StatusForbidden},
		{http.MethodPost, []string{"Sec-Fetch-Site", "same-origin"}, http.StatusOK},
		{http.MethodPost, nil, http.StatusOK}, // curl, Go clients
		{http.MethodGet, []string{"Sec-Fetch-Site", "cross-site"}, http.StatusOK},
	} {
		if code, body := serve(t, h, tc.method, "/ingester/shutdown", tc.header...); code != tc.want {
			t.Errorf("%s with %v: %d %q, want %d", tc.method, tc.header, code, body, tc.want)
		}
	}
}
