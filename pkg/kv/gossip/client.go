package gossip

import (
	"context"
	"fmt"

	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/codec"
	"github.com/grafana/dskit/services"
)

// Client returns a kv.Client whose values are encoded with c, for dskit's
// ring (pkg/kv.NewClient). Values must implement memberlist.Mergeable.
// Calls wait for the KV's service to be running.
func (k *KV) Client(c codec.Codec) kv.Client {
	k.store.register(c)
	return &client{k: k, codec: c}
}

type client struct {
	k     *KV
	codec codec.Codec
}

var _ kv.Client = (*client)(nil)

func (c *client) List(ctx context.Context, prefix string) ([]string, error) {
	if err := c.awaitRunning(ctx); err != nil {
		return nil, err
	}
	return c.k.store.list(prefix), nil
}

func (c *client) Get(ctx context.Context, key string) (any, error) {
	if err := c.awaitRunning(ctx); err != nil {
		return nil, err
	}
	v, _ := c.k.store.get(key)
	return v, nil
}

func (c *client) Delete(ctx context.Context, key string) error {
	if err := c.awaitRunning(ctx); err != nil {
		return err
	}
	return c.k.delete(key)
}

func (c *client) CAS(ctx context.Context, key string, f func(in any) (out any, retry bool, err error)) error {
	if err := c.awaitRunning(ctx); err != nil {
		return err
	}
	return c.k.cas(ctx, key, c.codec, f)
}

func (c *client) WatchKey(ctx context.Context, key string, f func(any) bool) {
	if c.awaitRunning(ctx) == nil {
		c.k.watchKey(ctx, key, f)
	}
}

func (c *client) WatchPrefix(ctx context.Context, prefix string, f func(string, any) bool) {
	if c.awaitRunning(ctx) == nil {
		c.k.watchPrefix(ctx, prefix, f)
	}
}

// awaitRunning lets calls through while the KV runs or stops (an ingester
// leaving the ring writes while its dependencies shut down), waits while it
// starts, and fails once it has terminated.
func (c *client) awaitRunning(ctx context.Context) error {
	s := c.k.service
	switch st := s.State(); st {
	case services.Running, services.Stopping:
		return nil
	case services.New, services.Starting:
		err := s.AwaitRunning(ctx)
		if s.State() == services.Stopping {
			return nil
		}
		if err != nil {
			return fmt.Errorf("gossip KV is not running: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("gossip KV is %s", st)
	}
}
