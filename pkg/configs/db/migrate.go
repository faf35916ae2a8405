package db

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Migrations are the numbered files migrations/<dialect>/NNNN_name.sql,
// applied once each, in order, and recorded in schema_migrations.
//
//go:embed migrations
var migrationFiles embed.FS

type migration struct {
	version int64
	name    string
	sql     string
}

// migrationsFor returns the dialect's migrations in version order.
func migrationsFor(d dialect) ([]migration, error) {
	dir := path.Join("migrations", d.name)
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s/%s: the name must start with a positive version number and '_'", dir, e.Name())
		}
		b, err := fs.ReadFile(migrationFiles, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: strings.TrimSuffix(e.Name(), ".sql"), sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return int(a.version - b.version) })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// statements splits a migration file into its statements. Migration files
// end every statement with ';' at the end of a line and put no ';' at the
// end of a line elsewhere.
func statements(src string) []string {
	var out []string
	var cur strings.Builder
	for line := range strings.Lines(src) {
		cur.WriteString(line)
		if strings.HasSuffix(strings.TrimSpace(stripComment(line)), ";") {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" && !onlyComments(s) {
		out = append(out, cur.String())
	}
	return out
}

func stripComment(line string) string {
	if i := strings.Index(line, "--"); i >= 0 {
		return line[:i]
	}
	return line
}

func onlyComments(s string) bool {
	for line := range strings.Lines(s) {
		if strings.TrimSpace(stripComment(line)) != "" {
			return false
		}
	}
	return true
}

// migrate brings the schema up to date in one transaction, so a failed
// migration leaves the database as it was. Processes starting together
// against one PostgreSQL database take turns (an advisory lock); SQLite's
// write lock does the same for a file.
func migrate(ctx context.Context, db *sql.DB, d dialect) (applied []string, err error) {
	ms, err := migrationsFor(d)
	if err != nil {
		return nil, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if d.migrationLock != "" {
		if _, err := tx.ExecContext(ctx, d.migrationLock); err != nil {
			return nil, fmt.Errorf("locking for migrations: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    BIGINT PRIMARY KEY,
		name       TEXT   NOT NULL,
		applied_at BIGINT NOT NULL
	)`); err != nil {
		return nil, fmt.Errorf("creating schema_migrations: %w", err)
	}
	done := map[int64]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("reading schema_migrations: %w", err)
	}
	var newest int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, err
		}
		done[v] = true
		newest = max(newest, v)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if known := ms[len(ms)-1].version; newest > known {
		return nil, fmt.Errorf("the database schema is at version %d but this binary only knows versions up to %d: it was migrated by a newer cortex; run that version", newest, known)
	}
	for _, m := range ms {
		if done[m.version] {
			continue
		}
		for _, stmt := range statements(m.sql) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return nil, fmt.Errorf("migration %s: %w", m.name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, d.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
			m.version, m.name, time.Now().UnixMilli()); err != nil {
			return nil, fmt.Errorf("recording migration %s: %w", m.name, err)
		}
		applied = append(applied, m.name)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("committing migrations: %w", err)
	}
	return applied, nil
}
