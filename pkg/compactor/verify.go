package compactor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/bucketindex"
)

// indexHealth is what verifying a downloaded block's index found, the
// checks Thanos' compactor runs before compacting (GatherIndexHealthStats).
type indexHealth struct {
	series, outOfOrderSeries, outOfOrderChunks, duplicatedChunks int
	// outOfOrderLabels are series whose label names are not sorted, a bug
	// of Prometheus 2.8.0 and older (-compactor.accept-malformed-index).
	outOfOrderLabels int
	// outsideChunks are chunks beyond the block's time range.
	outsideChunks int
}

// verifyIndex reads every series of the block in dir. A series out of
// order, without labels or without chunks fails it outright.
func verifyIndex(ctx context.Context, dir string, minT, maxT int64) (h indexHealth, err error) {
	r, err := index.NewFileReader(filepath.Join(dir, block.IndexFilename), index.DecodePostingsRaw)
	if err != nil {
		return h, fmt.Errorf("opening the index: %w", err)
	}
	defer func() { err = errors.Join(err, r.Close()) }()
	name, value := index.AllPostingsKey()
	p, err := r.Postings(ctx, name, value)
	if err != nil {
		return h, fmt.Errorf("reading the postings: %w", err)
	}
	var (
		builder   labels.ScratchBuilder
		lset, prv labels.Labels
		chks      []chunks.Meta
	)
	for p.Next() {
		h.series++
		prv = lset.Copy()
		if err := r.Series(p.At(), &builder, &chks); err != nil {
			return h, fmt.Errorf("reading series %d: %w", p.At(), err)
		}
		lset = builder.Labels()
		if lset.IsEmpty() {
			return h, fmt.Errorf("series %d has no labels", p.At())
		}
		if !prv.IsEmpty() && labels.Compare(prv, lset) >= 0 {
			return h, fmt.Errorf("series %s out of order; previous %s", lset, prv)
		}
		last := ""
		sorted := true
		lset.Range(func(l labels.Label) {
			if l.Name < last {
				sorted = false
			}
			last = l.Name
		})
		if !sorted {
			h.outOfOrderLabels++
		}
		if len(chks) == 0 {
			return h, fmt.Errorf("series %s has no chunks", lset)
		}
		ooo := 0
		for i, c := range chks {
			if c.MinTime < minT || c.MaxTime > maxT {
				h.outsideChunks++
			}
			if i == 0 || c.MinTime > chks[i-1].MaxTime {
				continue
			}
			if c.MinTime == chks[i-1].MinTime && c.MaxTime == chks[i-1].MaxTime {
				h.duplicatedChunks++
				continue
			}
			ooo++
		}
		if ooo > 0 {
			h.outOfOrderSeries++
			h.outOfOrderChunks += ooo
		}
	}
	if err := p.Err(); err != nil {
		return h, fmt.Errorf("walking the postings: %w", err)
	}
	return h, nil
}

// outOfOrderChunksError is a source block whose index has overlapping or
// out-of-order chunks in a series.
type outOfOrderChunksError struct {
	id  ulid.ULID
	err error
}

func (e outOfOrderChunksError) Error() string { return e.err.Error() }

// checkBlock verifies a downloaded source block before it is compacted:
// chunks outside its time range, or (unless -compactor.accept-malformed-index)
// series with unsorted label names, fail the compaction; out-of-order
// chunks fail it with an outOfOrderChunksError, which
// -compactor.skip-blocks-with-out-of-order-chunks-enabled turns into a
// no-compact mark.
func (c *Compactor) checkBlock(ctx context.Context, id ulid.ULID, dir string, minT, maxT int64) error {
	h, err := c.verify(ctx, dir, minT, maxT)
	if err != nil {
		return fmt.Errorf("block %s: index not healthy: %w", id, err)
	}
	if h.outsideChunks > 0 {
		return fmt.Errorf("block %s: index not healthy: %d chunks outside the block's time range", id, h.outsideChunks)
	}
	if h.outOfOrderChunks > 0 {
		return outOfOrderChunksError{id: id, err: fmt.Errorf("block %s: %d/%d series have out-of-order chunks (%d chunks, %d of them exact duplicates); blocks with out-of-order chunks are dropped from compaction with -compactor.skip-blocks-with-out-of-order-chunks-enabled",
			id, h.outOfOrderSeries, h.series, h.outOfOrderChunks, h.duplicatedChunks)}
	}
	if h.outOfOrderLabels > 0 && !c.cfg.AcceptMalformedIndex {
		return fmt.Errorf("block %s: index contains %d series with out of order labels; try running with -compactor.accept-malformed-index", id, h.outOfOrderLabels)
	}
	return nil
}

// noCompactReasonOutOfOrderChunks is Thanos' reason for the mark.
const noCompactReasonOutOfOrderChunks = "block-index-out-of-order-chunk"

// markNoCompact writes Thanos' no-compact mark of a tenant's block, in the
// block's folder and the global markers folder.
func (c *Compactor) markNoCompact(ctx context.Context, tbkt objstore.Bucket, id ulid.ULID, reason, details string) error {
	mark, err := json.Marshal(struct {
		ID            ulid.ULID `json:"id"`
		Version       int       `json:"version"`
		Details       string    `json:"details,omitempty"`
		NoCompactTime int64     `json:"no_compact_time"`
		Reason        string    `json:"reason"`
	}{ID: id, Version: 1, Details: details, NoCompactTime: time.Now().Unix(), Reason: reason})
	if err != nil {
		return err
	}
	name := path.Join(id.String(), block.NoCompactMarkFilename)
	if err := bucketindex.BucketWithGlobalMarkers(tbkt).Upload(ctx, name, bytes.NewReader(mark)); err != nil {
		return fmt.Errorf("writing the no-compact mark of block %s: %w", id, err)
	}
	c.m.blocksMarkedForNoCompaction.Inc()
	return nil
}
