// Package tlsconfig builds every TLS server and client of the process on
// crypto/tls: the -server.*-tls-* and -<prefix>.tls-* flags, loading of
// certificates, keys and CA bundles with errors that name the flag and the
// path, reload without restart, verification of peers, explanations of
// failed handshakes, and the cortex_tls_* metrics.
//
// Every component's links go through it, so it must not import other
// packages of this module; it never logs or exports private key material,
// only certificates' names, serials and expiry.
package tlsconfig
