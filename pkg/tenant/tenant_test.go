package tenant

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grafana/dskit/user"
)

func TestValidNamesTheCharacter(t *testing.T) {
	for _, tc := range []struct {
		id, want string
	}{
		{"tenänt", `unsupported character 'ä' (U+00E4) at byte 3`},
		{"team-🚀", `unsupported character '🚀' (U+1F680) at byte 5`},
		{"a\xffb", `unsupported character byte 0xff (not valid UTF-8) at byte 1`},
		{"a b", `unsupported character ' ' (U+0020) at byte 1`},
	} {
		err := Valid(tc.id)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Valid(%q) = %v, want an error containing %q", tc.id, err, tc.want)
		}
	}
	for _, id := range []string{"tenant-1", "A.b_c*'()!", strings.Repeat("x", 150)} {
		if err := Valid(id); err != nil {
			t.Errorf("Valid(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range []string{".", "..", strings.Repeat("x", 151)} {
		if err := Valid(id); err == nil {
			t.Errorf("Valid(%q) = nil, want an error", id)
		}
	}
}

func TestHTTPMiddlewareNamesTheCharacter(t *testing.T) {
	h := HTTPMiddleware(true, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("handler reached with an invalid tenant")
	}))
	req := httptest.NewRequest(http.MethodGet, "/api/v1/labels", nil)
	req.Header.Set(HeaderName, "tenänt")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "'ä'") {
		t.Fatalf("got %d %q, want 400 naming 'ä'", rec.Code, rec.Body.String())
	}
}

func TestIDNamesTheCharacter(t *testing.T) {
	_, err := ID(user.InjectOrgID(context.Background(), "tenänt"))
	if err == nil || !strings.Contains(err.Error(), "'ä'") {
		t.Fatalf("ID = %v, want an error naming 'ä'", err)
	}
	id, err := ID(user.InjectOrgID(context.Background(), "tenant-1"))
	if err != nil || id != "tenant-1" {
		t.Fatalf("ID = %q, %v", id, err)
	}
}
