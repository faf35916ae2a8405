package alertstore

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
)

// lazyFilesystemStore is the filesystem backend while its directory does
// not exist: reads find no configuration, and the directory is created by
// the first write (or used once another process sharing it created it),
// so that an alertmanager with no configuration, such as -target=all's
// default, leaves no directory behind.
type lazyFilesystemStore struct {
	dir  string
	open func() (Store, error)

	mtx   sync.Mutex
	store Store // nil until the directory exists
}

// get returns the bucket store once the directory exists, or creates it
// when create is set; nil, nil while it does not exist.
func (s *lazyFilesystemStore) get(create bool) (Store, error) {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	if s.store != nil {
		return s.store, nil
	}
	if !create {
		if _, err := os.Stat(s.dir); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	}
	st, err := s.open()
	if err != nil {
		return nil, err
	}
	s.store = st
	return st, nil
}

func (s *lazyFilesystemStore) ListAllUsers(ctx context.Context) ([]string, error) {
	st, err := s.get(false)
	if st == nil || err != nil {
		return nil, err
	}
	return st.ListAllUsers(ctx)
}

func (s *lazyFilesystemStore) GetAlertConfigs(ctx context.Context, users []string) (map[string]AlertConfig, error) {
	st, err := s.get(false)
	if st == nil || err != nil {
		return map[string]AlertConfig{}, err
	}
	return st.GetAlertConfigs(ctx, users)
}

func (s *lazyFilesystemStore) GetAlertConfig(ctx context.Context, user string) (AlertConfig, error) {
	st, err := s.get(false)
	if err != nil {
		return AlertConfig{}, err
	}
	if st == nil {
		return AlertConfig{}, ErrNotFound
	}
	return st.GetAlertConfig(ctx, user)
}

func (s *lazyFilesystemStore) SetAlertConfig(ctx context.Context, user string, c AlertConfig) error {
	st, err := s.get(true)
	if err != nil {
		return err
	}
	return st.SetAlertConfig(ctx, user, c)
}

func (s *lazyFilesystemStore) DeleteAlertConfig(ctx context.Context, user string) error {
	st, err := s.get(false)
	if st == nil || err != nil {
		return err
	}
	return st.DeleteAlertConfig(ctx, user)
}

// Close closes the bucket client, if the directory was ever opened.
func (s *lazyFilesystemStore) Close() error {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	if c, ok := s.store.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// UserIndex is the opened store's user index updater, nil while the
// directory does not exist.
func (s *lazyFilesystemStore) UserIndex() *users.IndexUpdater {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	if b, ok := s.store.(*BucketStore); ok {
		return b.UserIndex()
	}
	return nil
}
