// Package auth binds client identities to tenants: -auth.client-tenants-file
// lists the tenants each client certificate may act for, and
// -auth.tenant-from-client-cert makes a certificate's identity the tenant of
// requests that name none. Both apply to every HTTP route that carries a
// tenant and to every gRPC call whose metadata names one.
package auth

import (
	"crypto/tls"
	"crypto/x509"
)

// Identity is the name a client certificate stands for: its first URI SAN
// if it has one (SPIFFE-style, spiffe://<trust domain>/<workload>), else
// its Subject Common Name. DNS names are not used: every leaf
// `cortex certs generate` makes carries the DNS name localhost, so they
// cannot tell clients apart.
func Identity(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	if len(cert.URIs) > 0 {
		return cert.URIs[0].String()
	}
	return cert.Subject.CommonName
}

// PeerIdentity is the identity of a connection's verified client
// certificate, "" without one.
func PeerIdentity(state *tls.ConnectionState) string {
	if state == nil || len(state.PeerCertificates) == 0 {
		return ""
	}
	return Identity(state.PeerCertificates[0])
}
