package cortex

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestQueryFrontendResultsCacheConfig: the results cache's keys of Cortex's
// file and their flags set the same fields.
func TestQueryFrontendResultsCacheConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cortex.yaml")
	yaml := `
query_range:
  cache_results: true
  results_cache:
    compression: snappy
    cache:
      enable_fifocache: true
      default_validity: 5m
      background:
        writeback_goroutines: 3
        writeback_buffer: 50
      fifocache:
        max_size_items: 1000
        size: 10
      memcached:
        batch_size: 64
        parallelism: 8
      memcached_client:
        host: memcached.example
        service: memcache
        update_interval: 30s
        consistent_hash: false
        circuit_breaker_consecutive_failures: 4
        circuit_breaker_timeout: 20s
        circuit_breaker_interval: 40s
`
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"yaml": {"-config.file=" + file},
		"flags": {
			"-querier.cache-results=true", "-frontend.compression=snappy", "-frontend.cache.enable-fifocache=true",
			"-frontend.default-validity=5m", "-frontend.background.write-back-concurrency=3", "-frontend.background.write-back-buffer=50",
			"-frontend.fifocache.max-size-items=1000", "-frontend.fifocache.size=10", "-frontend.memcached.batchsize=64",
			"-frontend.memcached.parallelism=8", "-frontend.memcached.hostname=memcached.example", "-frontend.memcached.service=memcache",
			"-frontend.memcached.update-interval=30s", "-frontend.memcached.consistent-hash=false",
			"-frontend.memcached.circuit-breaker-consecutive-failures=4", "-frontend.memcached.circuit-breaker-timeout=20s",
			"-frontend.memcached.circuit-breaker-interval=40s",
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := loadConfig(t, args...).Frontend
			m := f.Memcached
			if !f.CacheResults || f.Compression != "snappy" || !f.EnableFifoCache || f.DefaultValidity != 5*time.Minute ||
				f.WriteBackGoroutines != 3 || f.WriteBackBuffer != 50 || f.CacheMaxSizeItems != 1000 || f.CacheSize != 10 {
				t.Fatalf("frontend: %+v", f)
			}
			if m.BatchSize != 64 || m.Parallelism != 8 || m.Host != "memcached.example" || m.Service != "memcache" || m.UpdateInterval != 30*time.Second ||
				m.ConsistentHash || m.CBFailures != 4 || m.CBTimeout != 20*time.Second || m.CBInterval != 40*time.Second {
				t.Fatalf("memcached: %+v", m)
			}
		})
	}
}

// TestQueryRejectionConfig: limits.query_rejection is read from Cortex's
// keys, and a bad regex stops the start naming the attribute.
func TestQueryRejectionConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(`
limits:
  query_rejection:
    enabled: true
    query_attributes:
      - api_type: query_range
        regex: .*rate.*
        time_range_limit:
          min: 30d
        query_step_limit:
          max: 1s
        user_agent_regex: ^curl
        dashboard_uid: dash-1
        panel_id: "2"
        time_window:
          start: 2h
          end: 1h
`), 0o600); err != nil {
		t.Fatal(err)
	}
	qr := loadConfig(t, "-config.file="+good).Limits.QueryRejection
	if !qr.Enabled || len(qr.QueryAttributes) != 1 {
		t.Fatalf("query_rejection: %+v", qr)
	}
	a := qr.QueryAttributes[0]
	if a.APIType != "query_range" || a.Regex != ".*rate.*" || time.Duration(a.TimeRangeLimit.Min) != 30*24*time.Hour || time.Duration(a.QueryStepLimit.Max) != time.Second ||
		a.UserAgentRegex != "^curl" || a.DashboardUID != "dash-1" || a.PanelID != "2" || time.Duration(a.TimeWindow.Start) != 2*time.Hour || time.Duration(a.TimeWindow.End) != time.Hour {
		t.Fatalf("query attribute: %+v", a)
	}
	if cfg := loadConfig(t, "-frontend.query-rejection.enabled=true"); !cfg.Limits.QueryRejection.Enabled {
		t.Fatal("-frontend.query-rejection.enabled not set")
	}
}
