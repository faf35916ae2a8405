package db

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/golang-migrate/migrate/v4/database"
)

// fileLockedDriver makes golang-migrate's SQLite driver, whose lock only
// covers one process, take turns with other processes migrating the same
// file: Lock also takes an exclusive lock on <file>-migrate-lock. A lock on
// the database file itself would be unsafe: closing any descriptor of it
// drops SQLite's own POSIX locks.
type fileLockedDriver struct {
	database.Driver
	path string // "" for an in-memory database: nothing to share
	f    *os.File
}

func (d *fileLockedDriver) Lock() error {
	if err := d.Driver.Lock(); err != nil {
		return err
	}
	if d.path == "" {
		return nil
	}
	f, err := os.OpenFile(d.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err == nil {
		err = lockFile(f)
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		return errors.Join(fmt.Errorf("locking %s for migrations: %w", d.path, err), d.Driver.Unlock())
	}
	d.f = f
	return nil
}

func (d *fileLockedDriver) Unlock() error {
	var err error
	if d.f != nil {
		err = d.f.Close() // releases the lock
		d.f = nil
	}
	return errors.Join(err, d.Driver.Unlock())
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
