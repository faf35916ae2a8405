package validation

import (
	"reflect"
	"strings"
)

// forTenants returns the limits a query reading several tenants obeys, as
// Cortex's SmallestPositive* helpers give them: every numeric limit is the
// smallest positive one among the tenants' (0, unlimited, only when every
// tenant's is 0); settings that are not numbers are the first tenant's.
func (o *Overrides) forTenants(ids []string) *Limits {
	out := *o.For(ids[0])
	v := reflect.ValueOf(&out).Elem()
	for _, id := range ids[1:] {
		other := reflect.ValueOf(o.For(id)).Elem()
		for i := range v.NumField() {
			f, g := v.Field(i), other.Field(i)
			switch f.Kind() {
			case reflect.Int, reflect.Int64:
				if a, b := f.Int(), g.Int(); b > 0 && (a <= 0 || b < a) {
					f.SetInt(b)
				}
			case reflect.Float64:
				if a, b := f.Float(), g.Float(); b > 0 && (a <= 0 || b < a) {
					f.SetFloat(b)
				}
			}
		}
	}
	return &out
}

// several splits a query's X-Scope-OrgID naming several tenants ("a|b").
func several(tenantID string) ([]string, bool) {
	if !strings.Contains(tenantID, "|") {
		return nil, false
	}
	return strings.Split(tenantID, "|"), true
}
