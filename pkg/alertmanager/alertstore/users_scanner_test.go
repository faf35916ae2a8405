package alertstore

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
)

// With -alertmanager-storage.users-scanner.strategy=user_index, the
// tenants come from alerts/user-index.json.gz, which the store's updater
// writes and the listing leaves out; without an index, from a listing.
func TestAlertStoreUsersScanner(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, err := parse(t, "-alertmanager-storage.backend=filesystem", "-alertmanager-storage.filesystem.dir="+dir, "-alertmanager-storage.users-scanner.strategy=user_index")
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewStore(ctx, c, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := st.(*BucketStore)
	for _, tenant := range []string{"team-b", "team-a"} {
		if err := s.SetAlertConfig(ctx, tenant, AlertConfig{AlertmanagerConfig: "route: {receiver: r}\n"}); err != nil {
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
		t.Fatalf("without an index: %v, want team-a, team-b", got)
	}
	up := s.UserIndex()
	if up == nil {
		t.Fatal("no user index updater with the user_index strategy")
	}
	if err := up.UpdateIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "alerts", users.IndexFilename)); err != nil {
		t.Fatalf("the user index is not at alerts/%s: %v", users.IndexFilename, err)
	}
	if err := s.SetAlertConfig(ctx, "team-c", AlertConfig{AlertmanagerConfig: "route: {receiver: r}\n"}); err != nil {
		t.Fatal(err)
	}
	if got := list(); !slices.Equal(got, []string{"team-a", "team-b"}) {
		t.Fatalf("from the index: %v, want the indexed team-a, team-b", got)
	}
	if err := up.UpdateIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if got := list(); !slices.Equal(got, []string{"team-a", "team-b", "team-c"}) {
		t.Fatalf("after the index update: %v, want team-c too (and not the index itself)", got)
	}
}
