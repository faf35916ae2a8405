package client

import (
	"strings"
)

// SigningKeys is a comma-separated list of secret keys
// (-distributor.sign-write-requests-keys). Printed or written out as YAML,
// the keys are masked, as dskit's flagext.Secret masks a secret.
type SigningKeys []string

// String masks the keys.
func (k *SigningKeys) String() string {
	if k == nil || len(*k) == 0 {
		return ""
	}
	return "********"
}

// Set reads a comma-separated list.
func (k *SigningKeys) Set(s string) error {
	if s == "" {
		*k = nil
		return nil
	}
	*k = strings.Split(s, ",")
	return nil
}

// UnmarshalYAML reads a comma-separated string, as the flag does.
func (k *SigningKeys) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	return k.Set(s)
}

// MarshalYAML masks the keys.
func (k SigningKeys) MarshalYAML() (any, error) {
	if len(k) == 0 {
		return "", nil
	}
	return "********", nil
}
