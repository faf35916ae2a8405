package allowedtenants

import "testing"

func TestFilter(t *testing.T) {
	cases := []struct {
		name              string
		enabled, disabled []string
		want              map[string]bool
	}{
		{"no lists allow every tenant", nil, nil, map[string]bool{"a": true, "b": true}},
		{"enabled only", []string{"a"}, nil, map[string]bool{"a": true, "b": false}},
		{"disabled only", nil, []string{"b"}, map[string]bool{"a": true, "b": false}},
		{"disabled wins over enabled", []string{"a", "b"}, []string{"b"}, map[string]bool{"a": true, "b": false, "c": false}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := New(c.enabled, c.disabled)
			for tenant, want := range c.want {
				if got := f.IsAllowed(tenant); got != want {
					t.Errorf("IsAllowed(%q) = %v, want %v", tenant, got, want)
				}
			}
			if got, want := f.Restricted(), c.enabled != nil || c.disabled != nil; got != want {
				t.Errorf("Restricted() = %v, want %v", got, want)
			}
		})
	}
	var nilFilter *Filter
	if !nilFilter.IsAllowed("a") || nilFilter.Restricted() {
		t.Error("a nil filter must allow every tenant")
	}
}
