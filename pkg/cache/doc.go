// Package cache holds the byte caches shared by the query-frontend and the
// store-gateway: an in-memory LRU bounded in bytes, and a memcached client
// dialled through pkg/tlsconfig, so that memcached links reload rotated
// certificates like every other TLS link of the system.
package cache
