package alertstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	dskittenant "github.com/grafana/dskit/tenant"
)

// maxConfigSize bounds one stored configuration (with its templates), as
// read from a file or an object, or posted to the configuration API.
const maxConfigSize = 4 << 20

// LocalStore reads <path>/<tenant>.yaml (or .yml), each an Alertmanager
// configuration file, as Cortex's local store does. It is read-only.
type LocalStore struct {
	path string
}

// NewLocalStore returns a store reading the directory path.
func NewLocalStore(path string) *LocalStore { return &LocalStore{path: path} }

// ListAllUsers returns the tenant of every .yaml and .yml file directly in
// the directory.
func (s *LocalStore) ListAllUsers(context.Context) ([]string, error) {
	entries, err := os.ReadDir(s.path)
	if err != nil {
		return nil, fmt.Errorf("-%slocal.path=%q: %w", FlagPrefix, s.path, err)
	}
	var out []string
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		user := strings.TrimSuffix(e.Name(), ext)
		if dskittenant.ValidTenantID(user) != nil {
			continue
		}
		out = append(out, user)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// GetAlertConfigs reads the files of users.
func (s *LocalStore) GetAlertConfigs(ctx context.Context, users []string) (map[string]AlertConfig, error) {
	out := make(map[string]AlertConfig, len(users))
	for _, u := range users {
		c, err := s.GetAlertConfig(ctx, u)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[u] = c
	}
	return out, nil
}

// GetAlertConfig reads <path>/<user>.yaml, then <path>/<user>.yml.
func (s *LocalStore) GetAlertConfig(_ context.Context, user string) (AlertConfig, error) {
	if err := dskittenant.ValidTenantID(user); err != nil {
		return AlertConfig{}, err
	}
	for _, ext := range []string{".yaml", ".yml"} {
		p := filepath.Join(s.path, user+ext)
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return AlertConfig{}, err
		}
		if fi.Size() > maxConfigSize {
			return AlertConfig{}, fmt.Errorf("%s: %d bytes, more than the %d allowed", p, fi.Size(), maxConfigSize)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return AlertConfig{}, err
		}
		return AlertConfig{AlertmanagerConfig: string(b)}, nil
	}
	return AlertConfig{}, ErrNotFound
}

// SetAlertConfig refuses: the files are the operator's.
func (s *LocalStore) SetAlertConfig(context.Context, string, AlertConfig) error {
	return readOnly(Local, "edit the files in -"+FlagPrefix+"local.path")
}

// DeleteAlertConfig refuses: the files are the operator's.
func (s *LocalStore) DeleteAlertConfig(context.Context, string) error {
	return readOnly(Local, "remove the file from -"+FlagPrefix+"local.path")
}
