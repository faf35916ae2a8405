package distributor

import (
	"fmt"

	"github.com/prometheus/prometheus/prompb"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

// labelsTooLarge checks a series' labels against the tenant's
// -validation.max-labels-size-bytes, counting each label as Cortex does:
// its size as encoded in the write request.
func (v *validator) labelsTooLarge(ls []prompb.Label) (msg string, over bool) {
	limit := v.limits.MaxLabelsSizeBytes
	if limit <= 0 {
		return "", false
	}
	size := 0
	for i := range ls {
		size += ls[i].Size()
	}
	if size <= limit {
		return "", false
	}
	return fmt.Sprintf("labels size bytes exceeded for metric (actual: %d, limit: %d, set by -validation.max-labels-size-bytes or max_labels_size_bytes) metric: %.200q", size, limit, validation.FormatLabels(ls)), true
}
