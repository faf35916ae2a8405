package tlsconfig

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
)

// DefaultCipherSuites are the TLS 1.2 suites used unless others are named:
// forward-secret ECDHE key exchange with an AEAD cipher only. TLS 1.3 suites
// are all AEAD and not configurable.
var DefaultCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

var versions = map[string]uint16{
	"VersionTLS10": tls.VersionTLS10,
	"VersionTLS11": tls.VersionTLS11,
	"VersionTLS12": tls.VersionTLS12,
	"VersionTLS13": tls.VersionTLS13,
}

// ParseMinVersion reads a -*.tls-min-version value: VersionTLS12 (the
// default when empty) or VersionTLS13; VersionTLS10 and 11 are accepted but
// insecure, reported by the second result.
func ParseMinVersion(flag, value string) (v uint16, insecure bool, err error) {
	if value == "" {
		return tls.VersionTLS12, false, nil
	}
	v, ok := versions[value]
	if !ok {
		names := make([]string, 0, len(versions))
		for n := range versions {
			names = append(names, n)
		}
		slices.Sort(names)
		return 0, false, fmt.Errorf("-%s=%q is not a TLS version; valid values: %s", flag, value, strings.Join(names, ", "))
	}
	return v, v < tls.VersionTLS12, nil
}

// ParseCipherSuites reads a comma-separated list of Go cipher suite names.
// Empty gives DefaultCipherSuites. Suites Go deems insecure are accepted only
// when named, and returned in the second result so the caller can warn.
func ParseCipherSuites(flag, value string) (ids []uint16, insecure []string, err error) {
	if strings.TrimSpace(value) == "" {
		return slices.Clone(DefaultCipherSuites), nil, nil
	}
	known := map[string]uint16{}
	unsafe := map[string]bool{}
	var names []string
	for _, s := range tls.CipherSuites() {
		if !slices.Contains(s.SupportedVersions, tls.VersionTLS12) {
			continue // TLS 1.3 suites are not configurable
		}
		known[s.Name] = s.ID
		names = append(names, s.Name)
	}
	for _, s := range tls.InsecureCipherSuites() {
		known[s.Name] = s.ID
		unsafe[s.Name] = true
	}
	for _, name := range strings.Split(value, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		id, ok := known[name]
		if !ok {
			return nil, nil, fmt.Errorf("-%s: unknown cipher suite %q; valid names: %s", flag, name, strings.Join(names, ", "))
		}
		if unsafe[name] {
			insecure = append(insecure, name)
		}
		ids = append(ids, id)
	}
	return ids, insecure, nil
}

// VersionName names a TLS version for messages.
func VersionName(v uint16) string {
	for n, id := range versions {
		if id == v {
			return n
		}
	}
	return fmt.Sprintf("0x%04x", v)
}
