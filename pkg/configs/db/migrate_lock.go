package db

import (
	"fmt"
	"net/url"
	"os"
	"strings"
)

// lockSQLiteFile keeps processes opening the same SQLite file apart while
// each connects, switches the file to WAL and migrates it: it takes an
// exclusive lock on path (<file>-migrate-lock) and returns its release.
// golang-migrate's own SQLite lock only covers one process, and SQLite
// answers SQLITE_BUSY at once, whatever the busy timeout, to a second
// process switching a new file's journal mode. A lock on the database
// file itself would be unsafe: closing any descriptor of it drops SQLite's
// own POSIX locks. An empty path (in-memory database) takes no lock.
func lockSQLiteFile(path string) (unlock func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the migration lock %s: %w", path, err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}

// sqliteLockPath is the migration lock file of the SQLite file a DSN names,
// or "" for an in-memory database.
func sqliteLockPath(dsn string) string {
	p := sqlitePath(dsn)
	if p == "" {
		return ""
	}
	return p + "-migrate-lock"
}

// sqlitePath is the file a file: URI names, or "" for an in-memory
// database.
func sqlitePath(uri string) string {
	p, query, _ := strings.Cut(strings.TrimPrefix(uri, "file:"), "?")
	if strings.HasPrefix(p, "//") { // file://host/path or file:///path
		if u, err := url.Parse(uri); err == nil {
			p = u.Path
		}
	}
	if p == "" || p == ":memory:" || strings.Contains(query, "mode=memory") {
		return ""
	}
	return p
}
