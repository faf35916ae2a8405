package db

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cortex-tls/cortex/pkg/configs/db/dbtest"
)

func open(t *testing.T, uri string) *DB {
	t.Helper()
	db, err := Open(context.Background(), uri, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func set(t *testing.T, db *DB, tenant, kind, cfg string) int64 {
	t.Helper()
	id, err := db.Set(context.Background(), tenant, kind, []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestStore(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, uri string) {
		ctx := context.Background()
		db := open(t, uri)

		if _, err := db.Get(ctx, "a", KindAlertmanager); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get on an empty database: %v, want ErrNotFound", err)
		}
		if all, err := db.Since(ctx, KindAlertmanager, 0); err != nil || len(all) != 0 {
			t.Fatalf("Since(0) on an empty database: %v %v", all, err)
		}

		// IDs increase strictly, across tenants and kinds.
		id1 := set(t, db, "a", KindAlertmanager, `{"v":1}`)
		id2 := set(t, db, "b", KindAlertmanager, `{"v":2}`)
		id3 := set(t, db, "a", KindRules, `{"r":1}`)
		id4 := set(t, db, "a", KindAlertmanager, `{"v":3}`)
		if id1 <= 0 || id1 >= id2 || id2 >= id3 || id3 >= id4 {
			t.Fatalf("IDs do not increase: %d %d %d %d", id1, id2, id3, id4)
		}
		v, err := db.Get(ctx, "a", KindAlertmanager)
		if err != nil || v.ID != id4 || string(v.Config) != `{"v":3}` || v.DeletedAt != nil {
			t.Fatalf("Get(a): %+v %v, want the latest version %d", v, err, id4)
		}
		if v, err := db.Get(ctx, "b", KindRules); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(b, rules): %+v %v, want ErrNotFound (b only has an alertmanager config)", v, err)
		}

		// Since: the latest config of each tenant changed after the ID.
		all, err := db.Since(ctx, KindAlertmanager, 0)
		if err != nil || len(all) != 2 || all["a"].ID != id4 || all["b"].ID != id2 || string(all["b"].Config) != `{"v":2}` {
			t.Fatalf("Since(0): %+v %v", all, err)
		}
		changed, err := db.Since(ctx, KindAlertmanager, id2)
		if err != nil || len(changed) != 1 || changed["a"].ID != id4 {
			t.Fatalf("Since(%d): %+v %v, want only tenant a at %d", id2, changed, err, id4)
		}
		if none, err := db.Since(ctx, KindAlertmanager, id4); err != nil || len(none) != 0 {
			t.Fatalf("Since(latest): %+v %v, want nothing", none, err)
		}
		if rules, err := db.Since(ctx, KindRules, 0); err != nil || len(rules) != 1 || rules["a"].ID != id3 {
			t.Fatalf("Since(rules, 0): %+v %v", rules, err)
		}

		// Deactivate: every kind of the tenant, as new versions pollers see.
		if err := db.Deactivate(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Get(ctx, "a", KindAlertmanager); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after deactivate: %v, want ErrNotFound", err)
		}
		if _, err := db.Get(ctx, "a", KindRules); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(rules) after deactivate: %v, want ErrNotFound", err)
		}
		if _, err := db.Get(ctx, "b", KindAlertmanager); err != nil {
			t.Fatalf("deactivating a touched b: %v", err)
		}
		changed, err = db.Since(ctx, KindAlertmanager, id4)
		da := changed["a"]
		if err != nil || len(changed) != 1 || da.ID <= id4 || da.DeletedAt == nil || string(da.Config) != `{"v":3}` {
			t.Fatalf("Since after deactivate: %+v %v, want a deleted with a new ID", changed, err)
		}
		if err := db.Deactivate(ctx, "a"); err != nil {
			t.Fatalf("deactivating twice: %v", err)
		}
		if again, _ := db.Since(ctx, KindAlertmanager, da.ID); len(again) != 0 {
			t.Fatalf("a second deactivate made a new version: %+v", again)
		}

		// Restore brings back the config as it was, with a new ID.
		if err := db.Restore(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		v, err = db.Get(ctx, "a", KindAlertmanager)
		if err != nil || v.ID <= da.ID || string(v.Config) != `{"v":3}` || v.DeletedAt != nil {
			t.Fatalf("Get after restore: %+v %v", v, err)
		}
		if r, err := db.Get(ctx, "a", KindRules); err != nil || string(r.Config) != `{"r":1}` {
			t.Fatalf("Get(rules) after restore: %+v %v", r, err)
		}
		if changed, _ := db.Since(ctx, KindAlertmanager, da.ID); changed["a"].ID != v.ID || changed["a"].DeletedAt != nil {
			t.Fatalf("Since after restore: %+v", changed)
		}

		// Setting a config reactivates that kind.
		if err := db.Deactivate(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		id := set(t, db, "b", KindAlertmanager, `{"v":4}`)
		if v, err := db.Get(ctx, "b", KindAlertmanager); err != nil || v.ID != id {
			t.Fatalf("Get after a new config on a deactivated tenant: %+v %v", v, err)
		}

		// Unknown tenants.
		if err := db.Deactivate(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Deactivate(nobody): %v, want ErrNotFound", err)
		}
		if err := db.Restore(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Restore(nobody): %v, want ErrNotFound", err)
		}

		// Reopening keeps everything and applies no migration twice.
		db.Close()
		db2 := open(t, uri)
		if v, err := db2.Get(ctx, "b", KindAlertmanager); err != nil || v.ID != id {
			t.Fatalf("after reopening: %+v %v", v, err)
		}
		if next := set(t, db2, "c", KindAlertmanager, `{}`); next <= id {
			t.Fatalf("ID after reopening %d, not above %d", next, id)
		}
	})
}

// TestConcurrentWriters checks that concurrent writers all succeed and get
// distinct IDs, so neither backend loses a write to a lock conflict.
func TestConcurrentWriters(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, uri string) {
		db := open(t, uri)
		var wg sync.WaitGroup
		ids := make(chan int64, 40)
		for i := range 40 {
			wg.Go(func() {
				tenant := string(rune('a' + i%4))
				if i%10 == 9 {
					if err := db.Deactivate(context.Background(), tenant); err != nil && !errors.Is(err, ErrNotFound) {
						t.Error(err)
					}
					return
				}
				id, err := db.Set(context.Background(), tenant, KindAlertmanager, []byte(`{}`))
				if err != nil {
					t.Error(err)
					return
				}
				ids <- id
			})
		}
		wg.Wait()
		close(ids)
		seen := map[int64]bool{}
		for id := range ids {
			if seen[id] {
				t.Fatalf("ID %d given twice", id)
			}
			seen[id] = true
		}
	})
}

// TestUpdate checks that Update sees the latest active config, that a
// deactivated tenant reads as having none, that an error of f stores
// nothing, and that concurrent updates of one tenant each see the previous
// one's write (a counter incremented 20 times ends at 20).
func TestUpdate(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, uri string) {
		ctx := context.Background()
		db := open(t, uri)
		incr := func(old View, found bool) ([]byte, error) {
			if !found {
				return []byte("1"), nil
			}
			n, err := strconv.Atoi(string(old.Config))
			return []byte(strconv.Itoa(n + 1)), err
		}
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if _, err := db.Update(ctx, "a", KindAlertmanager, incr); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		v, err := db.Get(ctx, "a", KindAlertmanager)
		if err != nil || string(v.Config) != "20" {
			t.Fatalf("after 20 concurrent increments: %q %v, want 20", v.Config, err)
		}

		refused := errors.New("refused")
		if _, err := db.Update(ctx, "a", KindAlertmanager, func(View, bool) ([]byte, error) { return nil, refused }); !errors.Is(err, refused) {
			t.Fatalf("Update with a failing f: %v, want f's error as is", err)
		}
		if after, _ := db.Get(ctx, "a", KindAlertmanager); after.ID != v.ID {
			t.Fatalf("a refused Update stored version %d", after.ID)
		}

		if err := db.Deactivate(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		id, err := db.Update(ctx, "a", KindAlertmanager, func(old View, found bool) ([]byte, error) {
			if found || old.Config != nil {
				t.Errorf("Update on a deactivated tenant got %+v found=%v, want nothing", old, found)
			}
			return []byte("fresh"), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := db.Get(ctx, "a", KindAlertmanager); err != nil || got.ID != id || string(got.Config) != "fresh" {
			t.Fatalf("Get after Update of a deactivated tenant: %+v %v, want version %d, active", got, err, id)
		}
	})
}

// openRaw opens the database at uri without migrating it, closed when the
// test ends.
func openRaw(t *testing.T, uri string) (dialect, string, *sql.DB) {
	t.Helper()
	d, dsn, err := parseURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	sdb, err := sql.Open(d.driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sdb.Close() })
	return d, dsn, sdb
}

func TestMigrations(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, uri string) {
		d, dsn, sdb := openRaw(t, uri)
		ctx := context.Background()
		applied, err := migrate(ctx, sdb, d, dsn)
		if err != nil || len(applied) == 0 || applied[0] != "0001_configs" {
			t.Fatalf("first migration run: %v %v", applied, err)
		}
		if applied, err := migrate(ctx, sdb, d, dsn); err != nil || len(applied) != 0 {
			t.Fatalf("second migration run applied %v (%v), want nothing", applied, err)
		}
		// A schema from a newer binary is refused, not mangled.
		if _, err := sdb.ExecContext(ctx, `UPDATE schema_migrations SET version = 9999`); err != nil {
			t.Fatal(err)
		}
		if _, err := migrate(ctx, sdb, d, dsn); err == nil || !strings.Contains(err.Error(), "schema is at version 9999") {
			t.Fatalf("newer schema: %v", err)
		}
		// A migration that failed part way is reported, not retried.
		if _, err := sdb.ExecContext(ctx, d.rebind(`UPDATE schema_migrations SET version = 1, dirty = ?`), true); err != nil {
			t.Fatal(err)
		}
		if _, err := migrate(ctx, sdb, d, dsn); err == nil || !strings.Contains(err.Error(), "migration 1 failed part way") {
			t.Fatalf("dirty schema: %v", err)
		}
	})
}

// TestLegacyVersionTable opens a database made by the hand-written migrator
// this package had before golang-migrate: its schema_migrations(version,
// name, applied_at) becomes golang-migrate's at the same version, and the
// configs stored stay.
func TestLegacyVersionTable(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, uri string) {
		d, _, sdb := openRaw(t, uri)
		ctx := context.Background()
		ddl, err := migrationFiles.ReadFile("migrations/" + d.name + "/0001_configs.up.sql")
		if err != nil {
			t.Fatal(err)
		}
		// What the hand-written migrator left: its table, migration 0001's
		// schema, and a stored config.
		for _, stmt := range []string{
			`CREATE TABLE IF NOT EXISTS schema_migrations (
				version    BIGINT PRIMARY KEY,
				name       TEXT   NOT NULL,
				applied_at BIGINT NOT NULL
			)`,
			string(ddl),
			`INSERT INTO schema_migrations (version, name, applied_at) VALUES (1, '0001_configs', 1700000000000)`,
			`INSERT INTO configs (owner_id, kind, config, created_at) VALUES ('a', 'alertmanager', '{"old":true}', 1700000000000)`,
		} {
			if _, err := sdb.ExecContext(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		db := open(t, uri)
		if v, err := db.Get(ctx, "a", KindAlertmanager); err != nil || string(v.Config) != `{"old":true}` {
			t.Fatalf("config stored before the upgrade: %+v %v", v, err)
		}
		var version int64
		var dirty bool
		if err := sdb.QueryRowContext(ctx, `SELECT version, dirty FROM schema_migrations`).Scan(&version, &dirty); err != nil || version != 1 || dirty {
			t.Fatalf("schema_migrations after the upgrade: version %d dirty %v (%v), want 1, false", version, dirty, err)
		}
		db.Close()
		db = open(t, uri) // and again, now in golang-migrate's format
		if id := set(t, db, "b", KindRules, `{}`); id <= 1 {
			t.Fatalf("ID after the upgrade: %d", id)
		}
	})
}

// TestConcurrentOpen: processes starting together on one database take
// turns migrating it (separate handles stand for separate processes).
func TestConcurrentOpen(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, uri string) {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				db, err := Open(context.Background(), uri, slog.New(slog.DiscardHandler))
				if err != nil {
					t.Error(err)
					return
				}
				db.Close()
			})
		}
		wg.Wait()
	})
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(context.Background(), "mysql://u:hunter2@h/db", slog.New(slog.DiscardHandler)); err == nil ||
		!strings.Contains(err.Error(), "file:<path> for SQLite") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("unsupported scheme: %v", err)
	}
	// The SQLite file's directory is created, private.
	dir := filepath.Join(t.TempDir(), "a", "b")
	db := open(t, "file:"+filepath.Join(dir, "configs.db"))
	defer db.Close()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory: %v %v, want mode 0700", fi, err)
	}
	// A file that is not a database.
	bad := filepath.Join(t.TempDir(), "bad.db")
	if err := os.WriteFile(bad, []byte(strings.Repeat("not a database ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), "file:"+bad, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("opening a file that is not a database succeeded")
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://cortex:s3cret@db:5432/configs?sslmode=verify-full": "postgres://cortex:xxxxx@db:5432/configs?sslmode=verify-full",
		"postgres://cortex@db/configs":                                 "postgres://cortex@db/configs",
		"file:./configs/configs.db":                                    "file:./configs/configs.db",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
