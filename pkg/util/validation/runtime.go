package validation

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// DecodeOverrides decodes the runtime configuration's overrides block:
// each tenant's limits start from defaults, so a tenant's block lists only
// what differs. A field unknown to the limits block is an error naming the
// tenant, the line and the field; a limit that fails Validate names the
// tenant.
func DecodeOverrides(defaults Limits, raw map[string]yaml.Node) (map[string]*Limits, error) {
	out := make(map[string]*Limits, len(raw))
	for tenantID, node := range raw {
		l := defaults
		if err := decodeStrict(&node, &l); err != nil {
			return nil, fmt.Errorf("overrides for tenant %q: %w", tenantID, err)
		}
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("overrides for tenant %q: %w", tenantID, err)
		}
		out[tenantID] = &l
	}
	return out, nil
}

// DecodeStrict decodes a YAML node into into, refusing unknown fields.
func DecodeStrict(node *yaml.Node, into any) error { return decodeStrict(node, into) }

// LimitNames are the keys of a tenant's block under overrides, sorted.
var LimitNames = sync.OnceValue(func() []string {
	var names []string
	t := reflect.TypeFor[Limits]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
})
