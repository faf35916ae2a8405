//go:build !unix

package db

import "os"

// lockFile does nothing where flock(2) is missing: there, processes
// starting together on one SQLite file are not kept apart.
func lockFile(*os.File) error { return nil }
