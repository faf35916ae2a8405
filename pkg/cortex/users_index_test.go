package cortex

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// With the user_index strategy, a running ruler and alertmanager write the
// user index of their storage.
func TestRulerAndAlertmanagerWriteTheirUserIndex(t *testing.T) {
	cfg := loadConfig(t,
		"-ruler-storage.users-scanner.strategy=user_index", "-ruler-storage.users-scanner.user-index.update-interval=100ms",
		"-alertmanager-storage.backend=filesystem", "-alertmanager-storage.filesystem.dir="+filepath.Join(t.TempDir(), "alertmanager"),
		"-alertmanager-storage.users-scanner.strategy=user_index", "-alertmanager-storage.users-scanner.user-index.update-interval=100ms",
	)
	// The alertmanager's filesystem store is opened once its directory
	// exists: before, it has no tenant to index.
	amDir := cfg.AlertmanagerStorage.Filesystem.Directory
	if err := os.MkdirAll(amDir, 0o700); err != nil {
		t.Fatal(err)
	}
	startProcess(t, cfg)
	for name, dir := range map[string]string{"rules": cfg.RulerStorage.Filesystem.Directory + "/rules", "alerts": amDir + "/alerts"} {
		idx, err := filesystem.NewBucket(dir)
		if err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 30*time.Second, "the user index in "+name+"/", func() bool {
			_, err := users.ReadIndex(context.Background(), idx)
			return err == nil
		})
	}
}
