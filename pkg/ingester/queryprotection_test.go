package ingester

import (
	"errors"
	"io"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cortex-tls/cortex/pkg/ingester/client"
)

// Over -ingester.query-protection.rejection.threshold.heap-utilization the
// ingester refuses queries with Unavailable, naming the flag, and still
// accepts pushes; under it, it answers.
func TestHeapProtectionRefusesQueries(t *testing.T) {
	old := debug.SetMemoryLimit(1 << 40)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })

	for _, tc := range []struct {
		threshold float64
		refused   bool
	}{
		// Any heap at all is over a millionth of a millionth of 1 TiB,
		// and none of a test's is near 99% of it.
		{1e-12, true},
		{0.99, false},
	} {
		cfg := testConfig(t, t.TempDir(), newKV(t))
		cfg.QueryProtection.Rejection.Threshold.HeapUtilization = tc.threshold
		h := startHarness(t, cfg, newTestLimits(t, nil))
		now := float64(time.Now().UnixMilli())
		h.mustPush("team-a", floats(series("up", "job", "a"), now, 1))

		ctx := ctxFor("team-a")
		q := &prompb.Query{StartTimestampMs: 0, EndTimestampMs: int64(now) + 1, Matchers: []*prompb.LabelMatcher{eq("__name__", "up")}}
		calls := map[string]func() error{
			"QueryStream": func() error {
				s, err := h.conn.QueryStream(ctx, q)
				if err != nil {
					return err
				}
				return drain(s.Recv)
			},
			"QueryStreamChunks": func() error {
				s, err := h.conn.QueryStreamChunks(ctx, q)
				if err != nil {
					return err
				}
				return drainChunks(s.Recv)
			},
			"LabelNames": func() error {
				_, err := h.conn.LabelNames(ctx, &client.LabelNamesRequest{EndMs: int64(now) + 1})
				return err
			},
			"Series": func() error {
				_, err := h.conn.Series(ctx, &client.SeriesRequest{EndMs: int64(now) + 1})
				return err
			},
		}
		for name, call := range calls {
			err := call()
			if !tc.refused {
				if err != nil {
					t.Fatalf("threshold %v, %s: %v", tc.threshold, name, err)
				}
				continue
			}
			if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "heap utilization limit reached") ||
				!strings.Contains(err.Error(), "-ingester.query-protection.rejection.threshold.heap-utilization") {
				t.Fatalf("threshold %v, %s: %v, want Unavailable naming the flag", tc.threshold, name, err)
			}
		}
	}
}

func drain(recv func() (*prompb.QueryResult, error)) error {
	for {
		if _, err := recv(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

func drainChunks(recv func() (*prompb.ChunkedReadResponse, error)) error {
	for {
		if _, err := recv(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}
