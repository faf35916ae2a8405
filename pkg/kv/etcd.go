package kv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/grafana/dskit/backoff"
	"github.com/grafana/dskit/kv/codec"
	"github.com/grafana/dskit/kv/etcd"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// etcdClient is dskit's etcd client (kv/etcd) with this project's TLS: dskit
// builds its tls.Config from the files once, through etcd's TLSInfo, which
// reads the CA bundle only at start, offers non-AEAD cipher suites, ignores
// -<prefix>.etcd.tls-cipher-suites and dials plaintext when the paths are set
// without -<prefix>.etcd.tls-enabled. Here the link is a pkg/tlsconfig client
// like every other: any path turns TLS on, certificates and CA bundles reload
// without a restart, and a refused handshake names the flags at fault.
// The operations are dskit's, unchanged.
type etcdClient struct {
	cfg        etcd.Config
	flagPrefix string
	codec      codec.Codec
	cli        *clientv3.Client
	logger     *slog.Logger
}

// etcdTLS is the pkg/tlsconfig view of dskit's etcd TLS flags, registered
// under -<flagPrefix>etcd.tls-*.
func etcdTLS(cfg etcd.Config) tlsconfig.ClientConfig {
	return tlsconfig.ClientConfig{
		Enabled:            cfg.EnableTLS,
		CertPath:           cfg.TLS.CertPath,
		KeyPath:            cfg.TLS.KeyPath,
		CAPath:             cfg.TLS.CAPath,
		ServerName:         cfg.TLS.ServerName,
		InsecureSkipVerify: cfg.TLS.InsecureSkipVerify,
		MinVersion:         cfg.TLS.MinVersion,
		CipherSuites:       cfg.TLS.CipherSuites,
		CommonNameFallback: true,
	}
}

// newEtcdClient connects to cfg's endpoints; flagPrefix is the prefix the
// store's flags were registered with ("distributor.ha-tracker.").
func newEtcdClient(cfg etcd.Config, c codec.Codec, flagPrefix string, loader *tlsconfig.Loader, logger *slog.Logger) (*etcdClient, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("-%setcd.endpoints is empty: name at least one etcd server", flagPrefix)
	}
	tlsClient, err := tlsconfig.NewClient(flagPrefix+"etcd", etcdTLS(cfg), loader)
	if err != nil {
		return nil, err
	}
	// Connect before the component starts, within
	// -<prefix>.etcd.dial-timeout, so that a refused certificate or an
	// unreachable etcd stops the process with the reason instead of
	// leaving every later call waiting.
	dialOpts := []grpc.DialOption{grpc.WithBlock(), grpc.WithReturnConnectionError()} //nolint:staticcheck // the connection error is the explanation
	if tlsClient != nil {
		// Given after clientv3's own credentials, so they win.
		dialOpts = append(dialOpts, tlsClient.GRPCDialOption())
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		// As dskit: keepalive pings so a dead endpoint is noticed and
		// another one dialled.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 2 * cfg.DialTimeout,
		PermitWithoutStream:  true,
		DialOptions:          dialOpts,
		Username:             cfg.UserName,
		Password:             cfg.Password.String(),
		// Failures reach the caller as errors, which name the flags.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd -%setcd.endpoints=%s within -%setcd.dial-timeout=%s: %w", flagPrefix, strings.Join(cfg.Endpoints, ","), flagPrefix, cfg.DialTimeout, err)
	}
	return &etcdClient{cfg: cfg, flagPrefix: flagPrefix, codec: c, cli: cli, logger: logger}, nil
}

// Close closes the connections to etcd.
func (c *etcdClient) Close() error { return c.cli.Close() }

func (c *etcdClient) wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("etcd %v: %s %q: %w", c.cfg.Endpoints, op, key, err)
}

// CAS implements kv.Client as dskit's etcd client does: compare the key's
// version, retried up to -<prefix>.etcd.max-retries times.
func (c *etcdClient) CAS(ctx context.Context, key string, f func(in any) (out any, retry bool, err error)) error {
	var lastErr error
	for i := 0; i < c.cfg.MaxRetries; i++ {
		resp, err := c.cli.Get(ctx, key)
		if err != nil {
			lastErr = c.wrap("get", key, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		var version int64
		var in any
		if len(resp.Kvs) > 0 {
			if in, err = c.codec.Decode(resp.Kvs[0].Value); err != nil {
				lastErr = c.wrap("decode", key, err)
				continue
			}
			version = resp.Kvs[0].Version
		}
		out, retry, err := f(in)
		if err != nil {
			if !retry {
				return err
			}
			lastErr = err
			continue
		}
		if out == nil {
			return nil
		}
		buf, err := c.codec.Encode(out)
		if err != nil {
			lastErr = c.wrap("encode", key, err)
			continue
		}
		result, err := c.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.Version(key), "=", version)).
			Then(clientv3.OpPut(key, string(buf))).
			Commit()
		if err != nil {
			lastErr = c.wrap("compare-and-swap", key, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if result.Succeeded {
			return nil
		}
		// Another writer changed the key meanwhile: read it again.
	}
	if lastErr != nil {
		return lastErr
	}
	return fmt.Errorf("etcd %v: compare-and-swap %q: the key kept changing through %d attempts (-%setcd.max-retries)", c.cfg.Endpoints, key, c.cfg.MaxRetries, c.flagPrefix)
}

// WatchKey implements kv.Client.
func (c *etcdClient) WatchKey(ctx context.Context, key string, f func(any) bool) {
	c.watch(ctx, key, false, func(_ string, v any) bool { return f(v) })
}

// WatchPrefix implements kv.Client; as dskit's, it does not report
// deletions.
func (c *etcdClient) WatchPrefix(ctx context.Context, prefix string, f func(string, any) bool) {
	c.watch(ctx, prefix, true, f)
}

func (c *etcdClient) watch(ctx context.Context, key string, prefix bool, f func(string, any) bool) {
	b := backoff.New(ctx, backoff.Config{MinBackoff: time.Second, MaxBackoff: time.Minute})
	watchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var opts []clientv3.OpOption
	if prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	for b.Ongoing() {
		for resp := range c.cli.Watch(watchCtx, key, opts...) {
			if err := resp.Err(); err != nil {
				c.logger.Warn("etcd watch failed, watching again", "key", key, "err", c.wrap("watch", key, err))
				break
			}
			b.Reset()
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypeDelete {
					continue
				}
				v, err := c.codec.Decode(ev.Kv.Value)
				if err != nil {
					c.logger.Warn("etcd watch: undecodable value", "key", string(ev.Kv.Key), "err", err)
					continue
				}
				if !f(string(ev.Kv.Key), v) {
					return
				}
			}
		}
		b.Wait()
	}
}

// List implements kv.Client.
func (c *etcdClient) List(ctx context.Context, prefix string) ([]string, error) {
	resp, err := c.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, c.wrap("list", prefix, err)
	}
	keys := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	return keys, nil
}

// Get implements kv.Client.
func (c *etcdClient) Get(ctx context.Context, key string) (any, error) {
	resp, err := c.cli.Get(ctx, key)
	if err != nil {
		return nil, c.wrap("get", key, err)
	}
	switch len(resp.Kvs) {
	case 0:
		return nil, nil
	case 1:
		v, err := c.codec.Decode(resp.Kvs[0].Value)
		return v, c.wrap("decode", key, err)
	}
	return nil, errors.New("etcd: more than one value for " + key)
}

// Delete implements kv.Client.
func (c *etcdClient) Delete(ctx context.Context, key string) error {
	_, err := c.cli.Delete(ctx, key)
	return c.wrap("delete", key, err)
}
