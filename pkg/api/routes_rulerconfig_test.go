package api

import (
	"slices"
	"testing"
)

func TestRulerConfigAPIPaths(t *testing.T) {
	for _, tc := range []struct {
		prefixes, want []string
	}{
		{[]string{"/prometheus", "/api/prom"}, []string{"/api/v1/rules", "/prometheus/rules", "/prometheus/config/v1/rules", "/api/prom/rules", "/api/prom/config/v1/rules"}},
		// -http.prometheus-http-prefix=/api/prom: the legacy prefix once.
		{[]string{"/api/prom"}, []string{"/api/v1/rules", "/api/prom/rules", "/api/prom/config/v1/rules"}},
		// An empty prefix does not claim /rules at the root.
		{[]string{"", "/api/prom"}, []string{"/api/v1/rules", "/api/prom/rules", "/api/prom/config/v1/rules"}},
	} {
		if got := RulerConfigAPIPaths(tc.prefixes); !slices.Equal(got, tc.want) {
			t.Errorf("RulerConfigAPIPaths(%q) = %q, want %q", tc.prefixes, got, tc.want)
		}
	}
}
