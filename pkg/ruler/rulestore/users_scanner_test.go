package rulestore

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
)

// With -ruler-storage.users-scanner.strategy=user_index, the tenants come
// from rules/user-index.json.gz, which the store's updater writes; without
// an index, from a listing.
func TestRuleStoreUsersScanner(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := parseFlags(t, "-ruler-storage.filesystem.dir="+dir, "-ruler-storage.users-scanner.strategy=user_index")
	st, err := NewStore(ctx, cfg, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.(io.Closer).Close() })
	s := st.(*BucketStore)
	for _, tenant := range []string{"team-b", "team-a"} {
		if err := s.SetRuleGroup(ctx, RuleGroup{User: tenant, Namespace: "ns", Group: group("g", "up")}); err != nil {
			t.Fatal(err)
		}
	}
	list := func() []string {
		t.Helper()
		got, err := s.ListAllUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := list(); !slices.Equal(got, []string{"team-a", "team-b"}) {
		t.Fatalf("without an index: %v, want the listing's team-a, team-b", got)
	}
	up, every := s.UserIndex()
	if up == nil || every != cfg.UsersScanner.UpdateInterval {
		t.Fatalf("user index updater %v every %s", up, every)
	}
	if err := up.UpdateIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "rules", users.IndexFilename)); err != nil {
		t.Fatalf("the user index is not at rules/%s: %v", users.IndexFilename, err)
	}
	if err := s.SetRuleGroup(ctx, RuleGroup{User: "team-c", Namespace: "ns", Group: group("g", "up")}); err != nil {
		t.Fatal(err)
	}
	if got := list(); !slices.Equal(got, []string{"team-a", "team-b"}) {
		t.Fatalf("from the index: %v, want the indexed team-a, team-b", got)
	}
	if err := up.UpdateIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if got := list(); !slices.Equal(got, []string{"team-a", "team-b", "team-c"}) {
		t.Fatalf("after the index update: %v, want team-c too", got)
	}
}

func TestRuleStoreUsersScannerValidated(t *testing.T) {
	cfg := parseFlags(t, "-ruler-storage.users-scanner.strategy=lookup")
	if err := cfg.Validate(); err == nil || err.Error() != `-ruler-storage.users-scanner.strategy="lookup": unknown strategy; valid values: list, user_index` {
		t.Fatalf("got %v", err)
	}
}
