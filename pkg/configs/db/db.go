// Package db stores the configs service's per-tenant configurations in SQL:
// an embedded SQLite file (pure Go, no cgo) or PostgreSQL, with the same
// queries and the same versioned migrations on both (golang-migrate).
//
// Every change of a tenant's config is a new row: a new config, a
// deactivation (a copy of the latest row with deleted_at set) or a restore (a
// copy with deleted_at cleared). Row IDs come from one sequence, so they
// order every change of every tenant, and a poller that remembers the
// highest ID it has seen asks only for what changed since.
//
// It knows no HTTP and no tenant header: pkg/configs serves it, and it must
// not import that package.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"
)

// Kinds of config a tenant has.
const (
	KindAlertmanager = "alertmanager"
	KindRules        = "rules"
)

// Kinds lists every kind; deactivate and restore apply to all of them.
var Kinds = []string{KindAlertmanager, KindRules}

// ErrNotFound means the tenant has no config of that kind, or has been
// deactivated.
var ErrNotFound = errors.New("no config")

// View is one stored version of a config.
type View struct {
	ID        int64
	Config    []byte     // JSON, as the API stored it
	DeletedAt *time.Time // set when the tenant is deactivated
}

// DB is an open configs database.
type DB struct {
	db      *sql.DB
	dialect dialect
	now     func() time.Time
}

type dialect struct {
	name   string // also the migrations directory
	driver string
	// migrationLock serialises the conversion of the hand-written
	// migrator's version table across processes, in its transaction.
	migrationLock string
	// legacyVersionTable counts the columns that only the hand-written
	// migrator's schema_migrations has (0 or 1).
	legacyVersionTable string
	// versionTableDDL creates golang-migrate's schema_migrations exactly as
	// its driver for the dialect does.
	versionTableDDL []string
	// writeLock makes a writing transaction wait for the others before it
	// takes an ID, so IDs become visible in increasing order: a poller that
	// has seen ID n never later finds a new row below n.
	writeLock   string
	placeholder func(i int) string
}

var (
	sqlite = dialect{
		name:               "sqlite",
		driver:             "sqlite",
		placeholder:        func(int) string { return "?" },
		legacyVersionTable: `SELECT COUNT(*) FROM pragma_table_info('schema_migrations') WHERE name = 'applied_at'`,
		versionTableDDL: []string{
			`CREATE TABLE IF NOT EXISTS schema_migrations (version uint64,dirty bool)`,
			`CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations (version)`,
		},
		// One connection and BEGIN IMMEDIATE (in the DSN) serialise writers.
	}
	postgres = dialect{
		name:          "postgres",
		driver:        "pgx",
		migrationLock: "SELECT pg_advisory_xact_lock(7364112025)",
		writeLock:     "LOCK TABLE configs IN EXCLUSIVE MODE",
		placeholder:   func(i int) string { return "$" + strconv.Itoa(i) },
		legacyVersionTable: `SELECT COUNT(*) FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = 'schema_migrations' AND column_name = 'applied_at'`,
		versionTableDDL: []string{
			`CREATE TABLE IF NOT EXISTS schema_migrations (version bigint not null primary key, dirty boolean not null)`,
		},
	}
)

// rebind turns the '?' placeholders of q into the dialect's.
func (d dialect) rebind(q string) string {
	if d.name == sqlite.name {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString(d.placeholder(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Open connects to uri (file:<path> for SQLite, postgres://... for
// PostgreSQL), creating a SQLite file's directory (0700) if needed, and
// applies any pending migrations.
func Open(ctx context.Context, uri string, logger *slog.Logger) (*DB, error) {
	d, dsn, err := parseURI(uri)
	if err != nil {
		return nil, err
	}
	if d.name == sqlite.name {
		unlock, err := lockSQLiteFile(sqliteLockPath(dsn))
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	sdb, err := sql.Open(d.driver, dsn)
	if err != nil {
		return nil, err
	}
	if d.name == sqlite.name {
		// SQLite allows one writer at a time; one connection makes
		// requests queue here instead of failing with SQLITE_BUSY.
		sdb.SetMaxOpenConns(1)
	} else {
		sdb.SetMaxOpenConns(10)
		sdb.SetConnMaxIdleTime(5 * time.Minute)
	}
	if err := sdb.PingContext(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("connecting: %w", err)
	}
	applied, err := migrate(ctx, sdb, d, dsn)
	if err != nil {
		sdb.Close()
		return nil, fmt.Errorf("migrating the schema: %w", err)
	}
	for _, m := range applied {
		logger.Info("configs database: applied migration", "migration", m, "database", d.name)
	}
	return &DB{db: sdb, dialect: d, now: time.Now}, nil
}

// parseURI picks the dialect and returns the driver's DSN.
func parseURI(uri string) (dialect, string, error) {
	switch {
	case strings.HasPrefix(uri, "postgres://"), strings.HasPrefix(uri, "postgresql://"):
		return postgres, uri, nil
	case strings.HasPrefix(uri, "file:"):
		return sqlite, sqliteDSN(uri), mkdirFor(uri)
	default:
		return dialect{}, "", fmt.Errorf("unsupported database URI %q: use file:<path> for SQLite or postgres://user@host:port/database for PostgreSQL", Redact(uri))
	}
}

// sqliteDSN adds the settings this package relies on unless uri sets them.
func sqliteDSN(uri string) string {
	base, query, _ := strings.Cut(uri, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return uri // the driver reports it
	}
	if q.Get("_txlock") == "" {
		q.Set("_txlock", "immediate") // writers take the lock up front, no upgrade deadlocks
	}
	pragmas := strings.Join(q["_pragma"], " ")
	if !strings.Contains(pragmas, "busy_timeout") {
		q.Add("_pragma", "busy_timeout(10000)") // other processes on the same file
	}
	if !strings.Contains(pragmas, "journal_mode") && !strings.Contains(query, "mode=memory") {
		q.Add("_pragma", "journal_mode(WAL)")
	}
	return base + "?" + q.Encode()
}

// mkdirFor creates the directory of a SQLite file URI, readable only by
// this user, since the file holds every tenant's configs.
func mkdirFor(uri string) error {
	if strings.HasPrefix(strings.TrimPrefix(uri, "file:"), "//") { // file://host/path or file:///path
		if _, err := url.Parse(uri); err != nil {
			return fmt.Errorf("database URI %q: %w", uri, err)
		}
	}
	p := sqlitePath(uri)
	if p == "" {
		return nil
	}
	if dir := filepath.Dir(p); dir != "." {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating the directory of the configs database: %w", err)
		}
	}
	return nil
}

// Redact returns uri with its password, if any, masked.
func Redact(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.User == nil {
		return uri
	}
	if _, ok := u.User.Password(); !ok {
		return uri
	}
	return u.Redacted()
}

// Close closes the database.
func (db *DB) Close() error { return db.db.Close() }

// Ping checks the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.db.PingContext(ctx) }

// Get returns the latest config of the given kind of an active tenant.
func (db *DB) Get(ctx context.Context, tenant, kind string) (View, error) {
	v, err := latest(ctx, db.db, db.dialect, tenant, kind)
	if err != nil {
		return View{}, err
	}
	if v.DeletedAt != nil {
		return View{}, ErrNotFound
	}
	return v, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func latest(ctx context.Context, q querier, d dialect, tenant, kind string) (View, error) {
	var v View
	var deleted sql.NullInt64
	err := q.QueryRowContext(ctx, d.rebind(`SELECT id, config, deleted_at FROM configs WHERE kind = ? AND owner_id = ? ORDER BY id DESC LIMIT 1`), kind, tenant).
		Scan(&v.ID, &v.Config, &deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return View{}, ErrNotFound
	}
	if err != nil {
		return View{}, fmt.Errorf("reading the %s config of tenant %q: %w", kind, tenant, err)
	}
	v.DeletedAt = fromMillis(deleted)
	return v, nil
}

// Set stores a new version of a tenant's config and returns its ID. A
// deactivated tenant that sets a config is active again for that kind.
func (db *DB) Set(ctx context.Context, tenant, kind string, config []byte) (int64, error) {
	var id int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, db.dialect.rebind(`INSERT INTO configs (owner_id, kind, config, created_at) VALUES (?, ?, ?, ?) RETURNING id`),
			tenant, kind, string(config), db.now().UnixMilli()).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("storing the %s config of tenant %q: %w", kind, tenant, err)
	}
	return id, nil
}

// Update stores a new version of a tenant's config computed by f from the
// latest active one, and returns its ID. found is false, and old empty,
// when the tenant has no config of that kind or has been deactivated. The read and the write are one transaction under the write
// lock, so a concurrent Set or Update is never lost. An error of f is
// returned as is and nothing is stored.
func (db *DB) Update(ctx context.Context, tenant, kind string, f func(old View, found bool) ([]byte, error)) (int64, error) {
	var id int64
	var fErr error
	err := db.write(ctx, func(tx *sql.Tx) error {
		old, err := latest(ctx, tx, db.dialect, tenant, kind)
		found := err == nil && old.DeletedAt == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if !found {
			old = View{}
		}
		config, err := f(old, found)
		if err != nil {
			fErr = err
			return err
		}
		return tx.QueryRowContext(ctx, db.dialect.rebind(`INSERT INTO configs (owner_id, kind, config, created_at) VALUES (?, ?, ?, ?) RETURNING id`),
			tenant, kind, string(config), db.now().UnixMilli()).Scan(&id)
	})
	if fErr != nil {
		return 0, fErr
	}
	if err != nil {
		return 0, fmt.Errorf("updating the %s config of tenant %q: %w", kind, tenant, err)
	}
	return id, nil
}

// Deactivate marks every config of the tenant deleted; Restore undoes it.
// Each is a new version (a new ID) so pollers see the change. They return
// ErrNotFound if the tenant has no config at all, and change nothing for a
// tenant already in that state.
func (db *DB) Deactivate(ctx context.Context, tenant string) error {
	return db.setDeleted(ctx, tenant, true)
}

// Restore reactivates a deactivated tenant's configs.
func (db *DB) Restore(ctx context.Context, tenant string) error {
	return db.setDeleted(ctx, tenant, false)
}

func (db *DB) setDeleted(ctx context.Context, tenant string, deleted bool) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		found := false
		now := db.now().UnixMilli()
		for _, kind := range Kinds {
			v, err := latest(ctx, tx, db.dialect, tenant, kind)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			found = true
			if (v.DeletedAt != nil) == deleted {
				continue
			}
			var deletedAt sql.NullInt64
			if deleted {
				deletedAt = sql.NullInt64{Int64: now, Valid: true}
			}
			if _, err := tx.ExecContext(ctx, db.dialect.rebind(`INSERT INTO configs (owner_id, kind, config, created_at, deleted_at) VALUES (?, ?, ?, ?, ?)`),
				tenant, kind, string(v.Config), now, deletedAt); err != nil {
				return err
			}
		}
		if !found {
			return ErrNotFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		verb := "restoring"
		if deleted {
			verb = "deactivating"
		}
		return fmt.Errorf("%s the configs of tenant %q: %w", verb, tenant, err)
	}
	return err
}

// Since returns, per tenant, the latest config of the given kind of every
// tenant whose latest change has an ID above since, deactivated tenants
// included (with DeletedAt set). since 0 returns every tenant.
func (db *DB) Since(ctx context.Context, kind string, since int64) (map[string]View, error) {
	rows, err := db.db.QueryContext(ctx, db.dialect.rebind(`
		SELECT c.owner_id, c.id, c.config, c.deleted_at
		FROM configs c
		JOIN (SELECT owner_id, MAX(id) AS id FROM configs WHERE kind = ? GROUP BY owner_id) l ON c.id = l.id
		WHERE c.id > ?`), kind, since)
	if err != nil {
		return nil, fmt.Errorf("listing %s configs since %d: %w", kind, since, err)
	}
	defer rows.Close()
	out := map[string]View{}
	for rows.Next() {
		var tenant string
		var v View
		var deleted sql.NullInt64
		if err := rows.Scan(&tenant, &v.ID, &v.Config, &deleted); err != nil {
			return nil, fmt.Errorf("listing %s configs since %d: %w", kind, since, err)
		}
		v.DeletedAt = fromMillis(deleted)
		out[tenant] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing %s configs since %d: %w", kind, since, err)
	}
	return out, nil
}

// write runs f in a transaction that holds the dialect's write lock.
func (db *DB) write(ctx context.Context, f func(tx *sql.Tx) error) (err error) {
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if db.dialect.writeLock != "" {
		if _, err := tx.ExecContext(ctx, db.dialect.writeLock); err != nil {
			return err
		}
	}
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func fromMillis(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.UnixMilli(v.Int64).UTC()
	return &t
}
