package bucket

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/kitlog"
)

// NewClient validates cfg and returns a client of its backend for the
// component name ("ingester", "store-gateway", "compactor", ...). The
// client's operations are counted in Cortex's metrics,
// thanos_objstore_bucket_operations_total{component=name,bucket="",operation}
// and the other thanos_objstore_bucket_* series, registered on reg (nil for
// none).
//
// tls is the process's loader: the S3 link's certificates are loaded from it
// now (errors name the -<prefix>s3.http.tls-* flag) and follow its reloads.
// A nil tls gets a loader of its own that never reloads (tests only).
//
// Nothing is read from or written to the bucket here; the filesystem backend
// only creates its directory. Close the client when done.
func NewClient(ctx context.Context, cfg Config, name string, tls *tlsconfig.Loader, logger *slog.Logger, reg prometheus.Registerer, opts ...ClientOption) (objstore.InstrumentedBucket, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o clientOptions
	for _, opt := range opts {
		opt(&o)
	}
	if cfg.IsExtraBackend() {
		return nil, fmt.Errorf("%s=%s is not an object storage backend: no bucket client for it", cfg.flag("backend"), cfg.Backend)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", name)
	kit := kitlog.New(logger)

	var (
		b   objstore.Bucket
		err error
	)
	switch cfg.Backend {
	case S3:
		if tls == nil {
			tls = tlsconfig.NewLoader(logger, nil)
		}
		b, err = newS3Client(&cfg, name, tls, logger, kit, o.wrapTransport)
	case GCS:
		b, err = newGCSClient(ctx, cfg.GCS, name, kit, o.wrapTransport)
	case Azure:
		b, err = newAzureClient(cfg.Azure, name, kit, o.wrapTransport)
	case Swift:
		b, err = newSwiftClient(cfg.Swift, kit, o.wrapTransport)
	case Filesystem:
		b, err = newFilesystemClient(&cfg, logger)
	}
	if err != nil {
		if cfg.Backend == S3 || cfg.Backend == Filesystem {
			return nil, err // already names the flags
		}
		return nil, fmt.Errorf("%s=%s: creating the bucket client: %w", cfg.flag("backend"), cfg.Backend, err)
	}

	if reg != nil {
		// Cortex's names: thanos_objstore_bucket_*{component="<name>", bucket=""}.
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"component": name}, prometheus.WrapRegistererWithPrefix("thanos_", reg))
	}
	return objstore.WrapWithMetrics(b, reg, ""), nil
}

// ClientOption configures a bucket client beyond its Config.
type ClientOption func(*clientOptions)

type clientOptions struct {
	wrapTransport func(http.RoundTripper) http.RoundTripper
}

// WithTransportWrapper wraps the HTTP transport of the S3, GCS, Azure and
// Swift clients with f (nil: as it is), as Cortex's store-gateway hedges
// its requests (HedgedRequestConfig.RoundTripper). The filesystem backend
// has no transport.
func WithTransportWrapper(f func(http.RoundTripper) http.RoundTripper) ClientOption {
	return func(o *clientOptions) { o.wrapTransport = f }
}

// newFilesystemClient creates -<prefix>filesystem.dir if missing and checks
// that it is a directory this process can read.
func newFilesystemClient(cfg *Config, logger *slog.Logger) (objstore.Bucket, error) {
	flag := cfg.flag("filesystem.dir")
	dir := cfg.Filesystem.Directory
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("%s=%q: creating the directory: %w", flag, dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", flag, dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s=%q: not a directory", flag, dir)
	}
	if _, err := os.ReadDir(dir); err != nil {
		return nil, fmt.Errorf("%s=%q: directory is not readable: %w", flag, dir, err)
	}
	b, err := newAtomicFilesystem(dir)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", flag, dir, err)
	}
	abs, _ := filepath.Abs(dir)
	logger.Info("object storage client", "backend", Filesystem, "dir", abs)
	return b, nil
}
