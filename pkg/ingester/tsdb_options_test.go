package ingester

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/compression"
)

// walRecordCompressions reads a WAL segment's record headers and counts
// the records of each compression: Prometheus' wlog flags a compressed
// record in its type byte (snappy 1<<3, zstd 1<<4).
func walRecordCompressions(t *testing.T, segment string) map[compression.Type]int {
	t.Helper()
	b, err := os.ReadFile(segment)
	if err != nil {
		t.Fatal(err)
	}
	const pageSize, headerSize = 32 * 1024, 7
	out := map[compression.Type]int{}
	for pos := 0; pos+headerSize <= len(b); {
		typ := b[pos]
		if typ == 0 { // the rest of the page is padding
			pos = (pos/pageSize + 1) * pageSize
			continue
		}
		switch {
		case typ&(1<<3) != 0:
			out[compression.Snappy]++
		case typ&(1<<4) != 0:
			out[compression.Zstd]++
		default:
			out[compression.None]++
		}
		pos += headerSize + int(binary.BigEndian.Uint16(b[pos+1:]))
	}
	return out
}

// -blocks-storage.tsdb.wal-compression-type picks the compression of the
// WAL's records, the type flag winning over the older snappy switch; a WAL
// written compressed replays.
func TestWALCompressionType(t *testing.T) {
	for _, tc := range []struct {
		typ     string
		enabled bool
		want    compression.Type
	}{
		{"", false, compression.None},
		{"", true, compression.Snappy},
		{"snappy", false, compression.Snappy},
		{"zstd", true, compression.Zstd},
	} {
		t.Run(fmt.Sprintf("%q,enabled=%v", tc.typ, tc.enabled), func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir, newKV(t))
			cfg.TSDB.WALCompressionType = tc.typ
			cfg.TSDB.WALCompressionEnabled = tc.enabled
			if err := cfg.TSDB.Validate(); err != nil {
				t.Fatal(err)
			}
			h := startHarness(t, cfg, newTestLimits(t, nil))
			// Series records of many similar labels compress well.
			var batch []prompb.TimeSeries
			for s := range 50 {
				ls := series("http_requests_total", "job", "a-rather-long-job-name", "instance", fmt.Sprintf("host-%03d.example.org:9100", s))
				batch = append(batch, floats(ls, float64(base), float64(s)))
			}
			h.mustPush("team-a", batch...)
			got := walRecordCompressions(t, filepath.Join(dir, "team-a", "wal", "00000000"))
			if got[tc.want] == 0 {
				t.Fatalf("WAL records by compression %v, want some of %q", got, tc.want)
			}
			for typ := range got {
				if typ != tc.want && typ != compression.None {
					t.Fatalf("WAL records by compression %v, want none of %q", got, typ)
				}
			}

			// The WAL replays on restart.
			h.stop()
			h = startHarness(t, cfg, newTestLimits(t, nil))
			if n := len(h.query("team-a", base-1, base+1, eq("__name__", "http_requests_total"))); n != 50 {
				t.Fatalf("%d series after replay, want 50", n)
			}
		})
	}
}

func TestTSDBTuningValidation(t *testing.T) {
	for _, tc := range []struct {
		set  func(*TSDBConfig)
		want string
	}{
		{func(c *TSDBConfig) { c.WALCompressionType = "gzip" }, `-blocks-storage.tsdb.wal-compression-type "gzip": the supported types are snappy, zstd and empty (none)`},
		{func(c *TSDBConfig) { c.HeadChunksWriteBufferSize = 32 * 1024 }, "-blocks-storage.tsdb.head-chunks-write-buffer-size-bytes 32768 must be a multiple of 1024 between 65536 and 8388608"},
		{func(c *TSDBConfig) { c.HeadChunksWriteBufferSize = 100*1024 + 1 }, "-blocks-storage.tsdb.head-chunks-write-buffer-size-bytes 102401 must be a multiple of 1024"},
		{func(c *TSDBConfig) { c.HeadChunksWriteQueueSize = -1 }, "-blocks-storage.tsdb.head-chunks-write-queue-size -1 must not be negative"},
	} {
		cfg := testConfig(t, t.TempDir(), nil).TSDB
		tc.set(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	cfg := testConfig(t, t.TempDir(), nil).TSDB
	if cfg.HeadChunksWriteBufferSize != chunks.DefaultWriteBufferSize || cfg.HeadChunksWriteQueueSize != 0 || cfg.WALCompressionType != "" {
		t.Fatalf("defaults %d, %d, %q; want Cortex's 4194304, 0 and empty", cfg.HeadChunksWriteBufferSize, cfg.HeadChunksWriteQueueSize, cfg.WALCompressionType)
	}
}

// -ingester.tokens-generator-strategy takes random, dskit's generator and
// the only one built; minimize-spread is refused by name.
func TestTokensGeneratorStrategy(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), nil)
	if cfg.TokensGeneratorStrategy != "random" {
		t.Fatalf("default %q, want Cortex's random", cfg.TokensGeneratorStrategy)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.TokensGeneratorStrategy = "minimize-spread"
	if err := cfg.Validate(); err == nil || err.Error() != `-ingester.tokens-generator-strategy="minimize-spread" (ingester.lifecycler.tokens_generator_strategy): only random is built here; Cortex's minimize-spread is not` {
		t.Fatalf("minimize-spread: %v", err)
	}
}
