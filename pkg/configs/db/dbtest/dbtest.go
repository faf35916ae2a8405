// Package dbtest gives tests a fresh configs database on every backend
// available: SQLite always, PostgreSQL when CORTEX_TEST_POSTGRES_URI names a
// server (.ci/run starts one and sets it).
//
// Only tests may import it: no package of the cortex binary must.
package dbtest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
)

// PostgresEnv names the environment variable with the test server's URI.
const PostgresEnv = "CORTEX_TEST_POSTGRES_URI"

var schemas atomic.Int64

// ForEach runs f as a subtest per backend, "sqlite" and "postgres", each
// with the URI of an empty database of its own.
func ForEach(t *testing.T, f func(t *testing.T, uri string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		f(t, "file:"+filepath.Join(t.TempDir(), "configs.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		f(t, Postgres(t))
	})
}

// Postgres returns the URI of a fresh schema on the test server, dropped when
// the test ends, or skips the test when no server is configured.
func Postgres(t *testing.T) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Skipf("PostgreSQL tests skipped: set %s=postgres://user:password@127.0.0.1:5432/db?sslmode=disable (.ci/run starts a server and sets it)", PostgresEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	schema := fmt.Sprintf("cortex_test_%d_%d", time.Now().UnixNano(), schemas.Add(1))
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("creating a schema on %s: %v", PostgresEnv, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping test schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
