package ingester

import (
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"sync/atomic"

	"github.com/grafana/dskit/ring"
)

// tokenFile is Cortex's tokens file (-ingester.tokens-file-path): dskit's
// {"tokens": [...]} plus the state the instance had when it stopped,
// which Cortex restores on start when it is READONLY.
type tokenFile struct {
	PreviousState string   `json:"previousState,omitempty"`
	Tokens        []uint32 `json:"tokens"`
}

// readOnlyState keeps the read-only mode across restarts in the tokens
// file, as Cortex's lifecycler keeps its READONLY state: a drained
// ingester that restarts must not take writes again unasked. (An instance
// kept in the ring, -ingester.unregister-on-shutdown=false, also finds its
// flag there.)
type readOnlyState struct {
	ring.BasicLifecyclerDelegate
	path   string
	logger *slog.Logger
	// wasReadOnly is what the file said at registration.
	wasReadOnly atomic.Bool
}

func (d *readOnlyState) OnRingInstanceRegister(l *ring.BasicLifecycler, desc ring.Desc, exists bool, id string, inst ring.InstanceDesc) (ring.InstanceState, ring.Tokens) {
	// Read before the tokens delegate rewrites the file with tokens only.
	if d.path != "" {
		f, err := readTokenFile(d.path)
		switch {
		case err == nil:
			d.wasReadOnly.Store(f.PreviousState == ModeReadOnly)
		case !errors.Is(err, fs.ErrNotExist):
			d.logger.Error("reading the previous state from -ingester.tokens-file-path", "path", d.path, "err", err)
		}
	}
	return d.BasicLifecyclerDelegate.OnRingInstanceRegister(l, desc, exists, id, inst)
}

func (d *readOnlyState) OnRingInstanceStopping(l *ring.BasicLifecycler) {
	if d.path != "" && l.IsRegistered() {
		state := ModeActive
		if ro, _ := l.GetReadOnlyState(); ro {
			state = ModeReadOnly
		}
		if err := writeTokenFile(d.path, tokenFile{PreviousState: state, Tokens: l.GetTokens()}); err != nil {
			d.logger.Error("saving the state to -ingester.tokens-file-path", "path", d.path, "err", err)
		}
	}
	d.BasicLifecyclerDelegate.OnRingInstanceStopping(l)
}

func readTokenFile(path string) (tokenFile, error) {
	var f tokenFile
	b, err := os.ReadFile(path)
	if err != nil {
		return f, err
	}
	err = json.Unmarshal(b, &f)
	return f, err
}

// writeTokenFile replaces the file whole, as dskit writes it.
func writeTokenFile(path string, f tokenFile) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
