package storegateway

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/thanos-io/objstore"
)

// The gRPC tests live in package storegateway_test, as they use
// pkg/storegateway/client, which imports this package; these give them the
// block helpers of the package's own tests.

// FloatSeries is a series of n samples every step ms from start, valued val(t).
func FloatSeries(lset labels.Labels, start, step int64, n int, val func(int64) float64) storage.Series {
	return genSeries{lset: lset, start: start, step: step, n: n, val: val}
}

// WriteBlock writes series into a new TSDB block and returns its folder.
func WriteBlock(t testing.TB, series []storage.Series) string { return writeBlock(t, series) }

// UploadBlock uploads a block as the ingesters' shipper does.
func UploadBlock(t testing.TB, bkt objstore.Bucket, tenant, dir string) {
	uploadBlock(t, bkt, tenant, dir, true)
}

// NewTestBucket is a filesystem bucket in a temporary folder.
func NewTestBucket(t testing.TB) objstore.Bucket { return newBucket(t) }

// NewTestStore is a BucketStore over bkt, closed when the test ends.
func NewTestStore(t testing.TB, bkt objstore.BucketReader) *BucketStore {
	s, _ := newStore(t, testConfig(t), bkt)
	return s
}
