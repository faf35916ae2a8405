// Package bucketindex is Cortex's per-tenant bucket index,
// <tenant>/bucket-index.json.gz: the tenant's complete blocks and their
// deletion marks, so that queriers and store-gateways find a tenant's
// blocks with one read instead of listing the bucket and reading every
// meta.json. The compactor keeps it up to date. The format is Cortex's,
// field for field, so either implementation reads what the other wrote.
package bucketindex

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
)

const (
	IndexFilename           = "bucket-index.json"
	IndexCompressedFilename = IndexFilename + ".gz"
	IndexVersion1           = 1

	SegmentsFormatUnknown = ""
	// SegmentsFormat1Based6Digits is chunk segments named 000001,
	// 000002, ... in sequence, which lets the index store their count
	// instead of their names.
	SegmentsFormat1Based6Digits = "1b6d"
)

// Index is a tenant's known blocks and deletion marks.
type Index struct {
	Version int `json:"version"`
	// Blocks are the complete blocks, marked for deletion or not; partial
	// blocks are left out.
	Blocks             Blocks             `json:"blocks"`
	BlockDeletionMarks BlockDeletionMarks `json:"block_deletion_marks"`
	// UpdatedAt is when the index was written, in unix seconds.
	UpdatedAt int64 `json:"updated_at"`
}

// GetUpdatedAt returns UpdatedAt as a time.
func (idx *Index) GetUpdatedAt() time.Time { return time.Unix(idx.UpdatedAt, 0) }

// RemoveBlock removes a block and its deletion mark from the index.
func (idx *Index) RemoveBlock(id ulid.ULID) {
	for i, b := range idx.Blocks {
		if b.ID == id {
			idx.Blocks = append(idx.Blocks[:i], idx.Blocks[i+1:]...)
			break
		}
	}
	for i, m := range idx.BlockDeletionMarks {
		if m.ID == id {
			idx.BlockDeletionMarks = append(idx.BlockDeletionMarks[:i], idx.BlockDeletionMarks[i+1:]...)
			break
		}
	}
}

// ActiveBlocks returns the blocks not marked for deletion.
func (idx *Index) ActiveBlocks() Blocks {
	marked := idx.BlockDeletionMarks.GetULIDSet()
	var res Blocks
	for _, b := range idx.Blocks {
		if _, ok := marked[b.ID]; !ok {
			res = append(res, b)
		}
	}
	return res
}

// Block is a block's entry in the index.
type Block struct {
	ID ulid.ULID `json:"block_id"`
	// MinTime and MaxTime are the block's time range in milliseconds,
	// [MinTime, MaxTime).
	MinTime int64 `json:"min_time"`
	MaxTime int64 `json:"max_time"`
	// SegmentsFormat and SegmentsNum describe the chunk segments when
	// their names follow a known pattern, rather than listing them, to
	// keep the index small.
	SegmentsFormat string `json:"segments_format,omitempty"`
	SegmentsNum    int    `json:"segments_num,omitempty"`
	// UploadedAt is when the block's upload completed (its meta.json was
	// written), in unix seconds.
	UploadedAt int64 `json:"uploaded_at"`
}

// Within reports whether the block holds samples in [minT, maxT].
func (b *Block) Within(minT, maxT int64) bool { return b.MinTime <= maxT && minT < b.MaxTime }

// GetUploadedAt returns UploadedAt as a time.
func (b *Block) GetUploadedAt() time.Time { return time.Unix(b.UploadedAt, 0) }

func (b *Block) String() string {
	return fmt.Sprintf("%s (min time: %s max time: %s)", b.ID,
		time.UnixMilli(b.MinTime).UTC(), time.UnixMilli(b.MaxTime).UTC())
}

// BlockFromMeta builds a block's index entry from its meta.json.
func BlockFromMeta(m block.Meta) *Block {
	format, num := detectSegmentsFormat(m)
	return &Block{
		ID:             m.ULID,
		MinTime:        m.MinTime,
		MaxTime:        m.MaxTime,
		SegmentsFormat: format,
		SegmentsNum:    num,
	}
}

func detectSegmentsFormat(m block.Meta) (string, int) {
	if len(m.Thanos.SegmentFiles) > 0 {
		for i, f := range m.Thanos.SegmentFiles {
			if fmt.Sprintf("%06d", i+1) != f {
				return SegmentsFormatUnknown, 0
			}
		}
		return SegmentsFormat1Based6Digits, len(m.Thanos.SegmentFiles)
	}
	num := 0
	for _, f := range m.Thanos.Files {
		if !strings.HasPrefix(f.RelPath, block.ChunksDirname+"/") {
			continue
		}
		if path.Join(block.ChunksDirname, fmt.Sprintf("%06d", num+1)) != f.RelPath {
			return SegmentsFormatUnknown, 0
		}
		num++
	}
	if num > 0 {
		return SegmentsFormat1Based6Digits, num
	}
	return SegmentsFormatUnknown, 0
}

// BlockDeletionMark is a deletion mark's entry in the index.
type BlockDeletionMark struct {
	ID ulid.ULID `json:"block_id"`
	// DeletionTime is when the block was marked, in unix seconds.
	DeletionTime int64 `json:"deletion_time"`
}

// GetDeletionTime returns DeletionTime as a time.
func (m *BlockDeletionMark) GetDeletionTime() time.Time { return time.Unix(m.DeletionTime, 0) }

// Blocks is a set of index blocks, in no particular order.
type Blocks []*Block

// GetULIDs returns the blocks' IDs.
func (s Blocks) GetULIDs() []ulid.ULID {
	ids := make([]ulid.ULID, len(s))
	for i, b := range s {
		ids[i] = b.ID
	}
	return ids
}

// BlockDeletionMarks is a set of deletion marks, in no particular order.
type BlockDeletionMarks []*BlockDeletionMark

// GetULIDSet returns the marked blocks' IDs.
func (s BlockDeletionMarks) GetULIDSet() map[ulid.ULID]struct{} {
	res := make(map[ulid.ULID]struct{}, len(s))
	for _, m := range s {
		res[m.ID] = struct{}{}
	}
	return res
}
