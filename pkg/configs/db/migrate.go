package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	gomigrate "github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	migratesqlite "github.com/golang-migrate/migrate/v4/database/sqlite" // modernc.org/sqlite: no cgo
	"github.com/golang-migrate/migrate/v4/source"
	"github.com/golang-migrate/migrate/v4/source/iofs"
)

// Migrations are golang-migrate's numbered files
// migrations/<dialect>/NNNN_name.up.sql, applied once each, in order; the
// version reached is recorded in golang-migrate's schema_migrations table
// (version, dirty).
//
//go:embed migrations
var migrationFiles embed.FS

// migrationsTable is golang-migrate's default table, kept so its CLI
// (migrate -database ... version/force) works on our databases as is.
const migrationsTable = "schema_migrations"

// migrationNames returns the dialect's migrations by version, named after
// their files without ".up.sql" ("0001_configs").
func migrationNames(d dialect) (map[uint]string, uint, error) {
	dir := path.Join("migrations", d.name)
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, 0, err
	}
	names := map[uint]string{}
	var newest uint
	for _, e := range entries {
		m, err := source.DefaultParse(e.Name())
		if err != nil {
			return nil, 0, fmt.Errorf("migration %s/%s: %w", dir, e.Name(), err)
		}
		if m.Direction != source.Up {
			continue
		}
		names[m.Version] = strings.TrimSuffix(m.Raw, ".up.sql")
		newest = max(newest, m.Version)
	}
	if len(names) == 0 {
		return nil, 0, fmt.Errorf("no migrations in %s", dir)
	}
	return names, newest, nil
}

// migrate brings the schema up to date with golang-migrate and returns the
// migrations it applied. Each migration runs in a transaction of its own
// (SQLite: the driver's; PostgreSQL: one multi-statement query). Processes
// starting together take turns: on PostgreSQL golang-migrate's advisory
// lock; on a SQLite file the file lock Open holds (lockSQLiteFile).
func migrate(ctx context.Context, sdb *sql.DB, d dialect, dsn string) (applied []string, err error) {
	names, newest, err := migrationNames(d)
	if err != nil {
		return nil, err
	}
	if err := upgradeLegacyVersionTable(ctx, sdb, d); err != nil {
		return nil, err
	}
	src, err := iofs.New(migrationFiles, path.Join("migrations", d.name))
	if err != nil {
		return nil, err
	}
	var drv database.Driver
	switch d.name {
	case sqlite.name:
		// The driver's Close closes the *sql.DB it is given, and an
		// in-memory database lives only in that handle: give it ours
		// and never close the driver.
		if drv, err = migratesqlite.WithInstance(sdb, &migratesqlite.Config{MigrationsTable: migrationsTable}); err != nil {
			return nil, fmt.Errorf("preparing migrations: %w", err)
		}
	default:
		// The driver holds one connection for its advisory lock and closes
		// the handle it is given: it gets a handle of its own.
		mdb, err := sql.Open(d.driver, dsn)
		if err != nil {
			return nil, err
		}
		if drv, err = migratepgx.WithInstance(mdb, &migratepgx.Config{MigrationsTable: migrationsTable}); err != nil {
			mdb.Close()
			return nil, fmt.Errorf("preparing migrations: %w", err)
		}
		defer drv.Close()
	}
	m, err := gomigrate.NewWithInstance("iofs", src, d.name, drv)
	if err != nil {
		return nil, err
	}
	// Cancelling the caller's context stops between migrations.
	stop := context.AfterFunc(ctx, func() {
		select {
		case m.GracefulStop <- true:
		default:
		}
	})
	defer stop()

	// Read without the migration lock: another process may be migrating
	// right now, and its version shows as dirty until it commits. Up
	// checks dirtiness again under the lock, which is what counts.
	before, _, err := m.Version()
	switch {
	case errors.Is(err, gomigrate.ErrNilVersion):
		before = 0
	case err != nil:
		return nil, fmt.Errorf("reading %s: %w", migrationsTable, err)
	case before > newest:
		return nil, fmt.Errorf("the database schema is at version %d but this binary only knows versions up to %d: it was migrated by a newer cortex; run that version", before, newest)
	}
	if err := m.Up(); err != nil && !errors.Is(err, gomigrate.ErrNoChange) {
		var de gomigrate.ErrDirty
		if errors.As(err, &de) {
			return nil, dirtyError(uint(de.Version))
		}
		return nil, fmt.Errorf("migration %s: %w", pending(names, before), err)
	}
	after, _, err := m.Version()
	if err != nil && !errors.Is(err, gomigrate.ErrNilVersion) {
		return nil, fmt.Errorf("reading %s: %w", migrationsTable, err)
	}
	for v := before + 1; v <= after; v++ {
		if n, ok := names[v]; ok {
			applied = append(applied, n)
		}
	}
	return applied, nil
}

// pending names the first migration after version v, the one that failed.
func pending(names map[uint]string, v uint) string {
	next := uint(0)
	for n := range names {
		if n > v && (next == 0 || n < next) {
			next = n
		}
	}
	if next == 0 {
		return fmt.Sprintf("after version %d", v)
	}
	return names[next]
}

func dirtyError(v uint) error {
	return fmt.Errorf("migration %d failed part way in an earlier run (%s.dirty is true); its transaction was rolled back unless the failure came after its commit: check the schema, then record the last version fully applied with `migrate -database <uri> force <version>` (golang-migrate's CLI) or by updating %s", v, migrationsTable, migrationsTable)
}

// upgradeLegacyVersionTable converts the version table of databases made by
// the hand-written migrator this package had before golang-migrate:
// schema_migrations(version, name, applied_at), one row per migration. It
// becomes golang-migrate's schema_migrations(version, dirty) at the highest
// version applied, in one transaction, so a database never loses track of
// its schema. golang-migrate's SQLite driver reads a table it does not
// recognise as an empty one and would run every migration again.
func upgradeLegacyVersionTable(ctx context.Context, sdb *sql.DB, d dialect) (err error) {
	tx, err := sdb.BeginTx(ctx, nil) // SQLite: BEGIN IMMEDIATE (the DSN's _txlock), so processes take turns
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if d.migrationLock != "" {
		// The lock the hand-written migrator took: an older binary
		// starting at the same time waits for this conversion.
		if _, err := tx.ExecContext(ctx, d.migrationLock); err != nil {
			return fmt.Errorf("locking for migrations: %w", err)
		}
	}
	var legacy int
	if err := tx.QueryRowContext(ctx, d.legacyVersionTable).Scan(&legacy); err != nil {
		return fmt.Errorf("inspecting %s: %w", migrationsTable, err)
	}
	if legacy == 0 {
		return tx.Rollback()
	}
	var version sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil {
		return fmt.Errorf("reading the old %s: %w", migrationsTable, err)
	}
	stmts := []string{`DROP TABLE schema_migrations`}
	stmts = append(stmts, d.versionTableDDL...)
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("converting %s to golang-migrate's: %w", migrationsTable, err)
		}
	}
	if version.Valid {
		if _, err := tx.ExecContext(ctx, d.rebind(`INSERT INTO schema_migrations (version, dirty) VALUES (?, ?)`), version.Int64, false); err != nil {
			return fmt.Errorf("converting %s to golang-migrate's: %w", migrationsTable, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("converting %s to golang-migrate's: %w", migrationsTable, err)
	}
	return nil
}
