package tenantfilter

import "testing"

func TestAllowed(t *testing.T) {
	for _, tc := range []struct {
		name              string
		enabled, disabled []string
		want              map[string]bool
	}{
		{"no lists", nil, nil, map[string]bool{"a": true, "b": true, "__markers__": false}},
		{"enabled only", []string{"a", "b"}, nil, map[string]bool{"a": true, "b": true, "c": false}},
		{"disabled only", nil, []string{"b"}, map[string]bool{"a": true, "b": false, "c": true}},
		{"both", []string{"a", "b"}, []string{"b", "c"}, map[string]bool{"a": true, "b": false, "c": false, "d": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := New(tc.enabled, tc.disabled)
			for tenant, want := range tc.want {
				if got := a.IsAllowed(tenant); got != want {
					t.Errorf("IsAllowed(%q) = %v, want %v", tenant, got, want)
				}
			}
		})
	}
	var none *Allowed
	if !none.IsAllowed("a") || none.IsAllowed("__markers__") {
		t.Error("the nil filter must allow every tenant but the markers folder")
	}
}
