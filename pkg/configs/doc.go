// Package configs is the configs service (-target=configs): Cortex's legacy
// configs API, storing every tenant's Alertmanager configuration and rules
// in SQL (pkg/configs/db) for the alertmanagers and rulers that poll it.
//
// Alertmanagers and rulers reach it only over HTTP: it must not import
// pkg/alertmanager or a ruler, nor they it. It never logs or prints the
// database password (DatabaseURI redacts it).
package configs
