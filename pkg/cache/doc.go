// Package cache holds the byte caches shared by the query-frontend and the
// store-gateway: an in-memory LRU bounded in bytes, a memcached client and
// a Redis client (rueidis, as Cortex's blocks caches use through Thanos),
// both dialled through pkg/tlsconfig, so that their links reload rotated
// certificates like every other TLS link of the system.
package cache
