package tenantyaml

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func list(tenants []string, fetch Fetch[string]) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	Write(rec, httptest.NewRequest(http.MethodGet, "/", nil), tenants, fetch, yaml.Marshal, slog.New(slog.DiscardHandler))
	return rec
}

// TestWriteOrdersAndSkips: one YAML map, in tenant order, without the
// tenants whose configuration is gone.
func TestWriteOrdersAndSkips(t *testing.T) {
	var tenants []string
	for i := range 40 {
		tenants = append(tenants, fmt.Sprintf("t%02d", 39-i))
	}
	rec := list(tenants, func(_ context.Context, tenant string) (string, bool, error) {
		return "config of " + tenant, tenant != "t07", nil
	})
	var got map[string]string
	if err := yaml.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("%d %v\n%s", rec.Code, err, rec.Body)
	}
	if len(got) != 39 || got["t00"] != "config of t00" || got["t39"] != "config of t39" || got["t07"] != "" {
		t.Errorf("got %v", got)
	}
	if !strings.HasPrefix(rec.Body.String(), "t00: config of t00\nt01: config of t01\n") {
		t.Errorf("not in tenant order:\n%s", rec.Body)
	}
}

// TestWriteFailures: a failure before anything was written answers 500; a
// failure after ends the written list with a comment naming it.
func TestWriteFailures(t *testing.T) {
	failing := func(bad string) Fetch[string] {
		return func(_ context.Context, tenant string) (string, bool, error) {
			if tenant == bad {
				return "", false, errors.New("bucket unreachable\nretry later")
			}
			return "ok", true, nil
		}
	}
	var tenants []string
	for i := range Concurrency + 1 {
		tenants = append(tenants, fmt.Sprintf("t%02d", i))
	}
	rec := list(tenants, failing("t03"))
	if rec.Code != http.StatusInternalServerError || rec.Body.String() != "bucket unreachable\nretry later\n" {
		t.Errorf("failure in the first tenants: %d %q", rec.Code, rec.Body)
	}
	rec = list(tenants, failing(tenants[Concurrency]))
	body := rec.Body.String()
	if rec.Code != http.StatusOK || strings.Count(body, ": ok\n") != Concurrency || !strings.HasSuffix(body, "t15: ok\n# the list stops here: bucket unreachable retry later\n") {
		t.Errorf("failure after the first %d tenants: %d %q", Concurrency, rec.Code, body)
	}
}
