package validation

import (
	"github.com/grafana/dskit/flagext"
	"gopkg.in/yaml.v3"
)

// CIDRList is a comma-separated list of CIDR networks, as a flag and in
// YAML. Unlike flagext.CIDRSliceCSV, a value replaces the list rather than
// adding to it: a tenant's override in the runtime configuration is its
// whole list, and "" clears the default one.
type CIDRList []flagext.CIDR

// String gives the list comma-separated.
func (c CIDRList) String() string { return flagext.CIDRSliceCSV(c).String() }

// Set replaces the list with s's networks; "" empties it.
func (c *CIDRList) Set(s string) error {
	var out flagext.CIDRSliceCSV
	if s != "" {
		if err := out.Set(s); err != nil {
			return err
		}
	}
	*c = CIDRList(out)
	return nil
}

// UnmarshalYAML reads the comma-separated string form.
func (c *CIDRList) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	return c.Set(s)
}

// MarshalYAML gives the comma-separated string form.
func (c CIDRList) MarshalYAML() (any, error) { return c.String(), nil }
