package cortex

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/runtimeconfig"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/bucket"
)

// RuntimeConfigConfig is Cortex's runtime_config block: the files
// reloaded every period and, as in Cortex, the bucket they are read from
// (-runtime-config.backend and its -runtime-config.<backend>.* flags, the
// bucket client of -blocks-storage.*). With the filesystem backend, the
// default, the files are local files (or HTTP URLs) read by dskit's
// manager, relative to -runtime-config.filesystem.dir when it is set; with
// any other backend, -runtime-config.file is the name of one object.
type RuntimeConfigConfig struct {
	runtimeconfig.Config `yaml:",inline"`
	StorageConfig        bucket.Config `yaml:",inline"`
}

// RegisterFlags registers dskit's -runtime-config.* flags and Cortex's
// -runtime-config.backend with its buckets' flags. The filesystem
// directory defaults to none, as in Cortex: the files are then read where
// -runtime-config.file names them.
func (c *RuntimeConfigConfig) RegisterFlags(f *flag.FlagSet) {
	c.Config.RegisterFlags(f)
	c.StorageConfig.RegisterFlagsWithPrefixAndDefaults("runtime-config.", f, bucket.Filesystem, "")
}

// fromBucket reports whether the files are objects of a bucket rather
// than local files.
func (c *RuntimeConfigConfig) fromBucket() bool {
	return c.StorageConfig.Backend != bucket.Filesystem
}

// Validate checks the backend's flags and that a bucket backend is given
// one object to read.
func (c *RuntimeConfigConfig) Validate() error {
	if !c.fromBucket() {
		return nil
	}
	if err := c.StorageConfig.Validate(); err != nil {
		return err
	}
	if len(c.LoadPath) > 1 {
		return fmt.Errorf("-runtime-config.file names %d files (%s), but -runtime-config.backend=%s reads one object", len(c.LoadPath), c.LoadPath.String(), c.StorageConfig.Backend)
	}
	if len(c.LoadPath) == 1 && isRuntimeConfigURL(c.LoadPath[0]) {
		return fmt.Errorf("-runtime-config.file=%s is a URL, but -runtime-config.backend=%s reads an object of the bucket: name the object", c.LoadPath[0], c.StorageConfig.Backend)
	}
	return nil
}

// localFiles returns dskit's configuration with the files placed under
// -runtime-config.filesystem.dir, as Cortex's filesystem bucket reads them.
func (c *RuntimeConfigConfig) localFiles() runtimeconfig.Config {
	out := c.Config
	dir := c.StorageConfig.Filesystem.Directory
	if dir == "" {
		return out
	}
	out.LoadPath = make([]string, len(c.LoadPath))
	for i, p := range c.LoadPath {
		if isRuntimeConfigURL(p) {
			out.LoadPath[i] = p
		} else {
			out.LoadPath[i] = filepath.Join(dir, p)
		}
	}
	return out
}

func isRuntimeConfigURL(p string) bool {
	return strings.HasPrefix(p, "http://") || strings.HasPrefix(p, "https://")
}

// runtimeConfigSource is what the modules read the runtime configuration
// from: dskit's manager of local files, or bucketRuntimeConfig.
type runtimeConfigSource interface {
	services.Service
	GetConfig() any
	CreateListenerChannel(buffer int) <-chan any
}

// bucketRuntimeConfig reloads the runtime configuration from one object
// of a bucket every period, as dskit's manager does for local files: a
// configuration that fails to read or load keeps the last good one in
// force, and runtime_config_last_reload_successful and
// runtime_config_hash{sha256} (with config="cortex") say which it is.
type bucketRuntimeConfig struct {
	services.Service

	bkt        objstore.Bucket
	backend    string
	key        string
	period     time.Duration
	preprocess runtimeconfig.Preprocessor
	load       runtimeconfig.Loader
	logger     log.Logger

	listenersMtx sync.Mutex
	listeners    []chan any
	config       atomic.Pointer[any]
	// hash is the SHA-256 of the object last loaded; only the service's
	// goroutine uses it.
	hash string

	loadSuccess prometheus.Gauge
	configHash  *prometheus.GaugeVec
}

func newBucketRuntimeConfig(cfg RuntimeConfigConfig, bkt objstore.Bucket, reg prometheus.Registerer, logger log.Logger) *bucketRuntimeConfig {
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"config": "cortex"}, reg)
	m := &bucketRuntimeConfig{
		bkt:        bkt,
		backend:    cfg.StorageConfig.Backend,
		key:        cfg.LoadPath[0],
		period:     cfg.ReloadPeriod,
		preprocess: cfg.Preprocessor,
		load:       cfg.Loader,
		logger:     logger,
		loadSuccess: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "runtime_config_last_reload_successful",
			Help: "Whether the last runtime-config reload attempt was successful.",
		}),
		configHash: promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{
			Name: "runtime_config_hash",
			Help: "Hash of the currently active runtime configuration, merged from all configured files.",
		}, []string{"sha256"}),
	}
	m.Service = services.NewBasicService(m.starting, m.running, m.stopping)
	return m
}

func (m *bucketRuntimeConfig) starting(ctx context.Context) error {
	if err := m.reload(ctx); err != nil {
		return fmt.Errorf("failed to load runtime config: %w", err)
	}
	return nil
}

func (m *bucketRuntimeConfig) running(ctx context.Context) error {
	if m.period <= 0 {
		<-ctx.Done()
		return nil
	}
	ticker := time.NewTicker(m.period)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			if err := m.reload(ctx); err != nil {
				// A typo in the object must not stop the process: the last
				// good configuration stays in force.
				_ = level.Error(m.logger).Log("msg", "failed to load config", "err", err)
			}
		case <-ctx.Done():
			return nil
		}
	}
}

func (m *bucketRuntimeConfig) stopping(error) error {
	m.listenersMtx.Lock()
	for _, ch := range m.listeners {
		close(ch)
	}
	m.listeners = nil
	m.listenersMtx.Unlock()
	return m.bkt.Close()
}

// reload reads the object and, when it changed, loads it and hands it to
// the listeners.
func (m *bucketRuntimeConfig) reload(ctx context.Context) error {
	data, err := m.read(ctx)
	if err == nil && m.preprocess != nil {
		data, err = m.preprocess(data)
		if err != nil {
			err = fmt.Errorf("object %q of the -runtime-config.backend=%s bucket: %w", m.key, m.backend, err)
		}
	}
	if err != nil {
		m.loadSuccess.Set(0)
		return err
	}
	sum := sha256.Sum256(data)
	hash := fmt.Sprintf("%x", sum)
	if hash == m.hash {
		m.loadSuccess.Set(1)
		return nil
	}
	v, err := m.load(bytes.NewReader(data))
	if err != nil {
		m.loadSuccess.Set(0)
		return fmt.Errorf("object %q of the -runtime-config.backend=%s bucket: %w", m.key, m.backend, err)
	}
	m.loadSuccess.Set(1)
	m.config.Store(&v)
	m.hash = hash
	m.configHash.Reset()
	m.configHash.WithLabelValues(hash).Set(1)
	m.listenersMtx.Lock()
	defer m.listenersMtx.Unlock()
	for _, ch := range m.listeners {
		select {
		case ch <- v:
		default: // the listener has not taken the previous value yet
		}
	}
	return nil
}

func (m *bucketRuntimeConfig) read(ctx context.Context) ([]byte, error) {
	r, err := m.bkt.Get(ctx, m.key)
	if err != nil {
		if m.bkt.IsObjNotFoundErr(err) {
			return nil, fmt.Errorf("-runtime-config.file=%s: no such object in the -runtime-config.backend=%s bucket", m.key, m.backend)
		}
		return nil, fmt.Errorf("-runtime-config.file=%s: reading the object from the -runtime-config.backend=%s bucket: %w", m.key, m.backend, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("-runtime-config.file=%s: reading the object from the -runtime-config.backend=%s bucket: %w", m.key, m.backend, err)
	}
	return data, nil
}

// GetConfig returns the configuration in force, nil before the first
// load.
func (m *bucketRuntimeConfig) GetConfig() any {
	if v := m.config.Load(); v != nil {
		return *v
	}
	return nil
}

// CreateListenerChannel returns a channel that receives each newly
// loaded configuration; a value the listener has not taken when the next
// one comes is dropped. The channel is closed when the service stops.
func (m *bucketRuntimeConfig) CreateListenerChannel(buffer int) <-chan any {
	ch := make(chan any, buffer)
	m.listenersMtx.Lock()
	defer m.listenersMtx.Unlock()
	m.listeners = append(m.listeners, ch)
	return ch
}
