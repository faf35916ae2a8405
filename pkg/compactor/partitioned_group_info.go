package compactor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
)

const partitionedGroupInfoVersion1 = 1

var errPartitionedGroupInfoNotFound = errors.New("partitioned group info not found")

// Partition is one partition of a partitioned group: the source blocks
// whose series the partition's compaction reads.
type Partition struct {
	PartitionID int         `json:"partitionID"`
	Blocks      []ulid.ULID `json:"blocks"`
}

// PartitionedGroupInfo is Cortex's partitioned group info file
// (partitioned-groups/<ID>.json in the tenant's folder): the plan that
// splits the compaction of one time range of a tenant's blocks into
// PartitionCount partitions, each written as a block holding the series
// whose label hash modulo PartitionCount is its partition ID.
type PartitionedGroupInfo struct {
	PartitionedGroupID uint32      `json:"partitionedGroupID"`
	PartitionCount     int         `json:"partitionCount"`
	Partitions         []Partition `json:"partitions"`
	RangeStart         int64       `json:"rangeStart"`
	RangeEnd           int64       `json:"rangeEnd"`
	// CreationTime is when the plan was written, in unix seconds.
	CreationTime int64 `json:"creationTime"`
	Version      int   `json:"version"`
}

func partitionedGroupFile(id uint32) string {
	return path.Join(PartitionedGroupDirectory, fmt.Sprintf("%d.json", id))
}

// allBlocks returns the group's source blocks, each once.
func (p *PartitionedGroupInfo) allBlocks() []ulid.ULID {
	seen := map[ulid.ULID]struct{}{}
	var out []ulid.ULID
	for _, part := range p.Partitions {
		for _, id := range part.Blocks {
			if _, ok := seen[id]; !ok {
				seen[id] = struct{}{}
				out = append(out, id)
			}
		}
	}
	return out
}

// readPartitionedGroupInfoFile reads a partitioned group info file of a
// tenant's bucket; errPartitionedGroupInfoNotFound when there is none.
func readPartitionedGroupInfoFile(ctx context.Context, tbkt objstore.BucketReader, name string) (*PartitionedGroupInfo, error) {
	r, err := tbkt.Get(ctx, name)
	if err != nil {
		if tbkt.IsObjNotFoundErr(err) {
			return nil, fmt.Errorf("%s: %w", name, errPartitionedGroupInfoNotFound)
		}
		return nil, fmt.Errorf("reading partitioned group info %s: %w", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading partitioned group info %s: %w", name, err)
	}
	var p PartitionedGroupInfo
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("parsing partitioned group info %s: %w", name, err)
	}
	if p.Version != partitionedGroupInfoVersion1 {
		return nil, fmt.Errorf("partitioned group info %s: unexpected version %d, expected %d", name, p.Version, partitionedGroupInfoVersion1)
	}
	if p.CreationTime <= 0 {
		// Written without a time: the object's own is the plan's.
		attrs, err := tbkt.Attributes(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("partitioned group info %s: reading its attributes: %w", name, err)
		}
		p.CreationTime = attrs.LastModified.Unix()
	}
	return &p, nil
}

func readPartitionedGroupInfo(ctx context.Context, tbkt objstore.BucketReader, id uint32) (*PartitionedGroupInfo, error) {
	return readPartitionedGroupInfoFile(ctx, tbkt, partitionedGroupFile(id))
}

// writePartitionedGroupInfo writes p unless a plan with its ID exists,
// and returns the plan in force: the existing one wins, as in Cortex, so
// that compactors planning the same group at once agree on one plan.
func writePartitionedGroupInfo(ctx context.Context, tbkt objstore.Bucket, p PartitionedGroupInfo) (*PartitionedGroupInfo, error) {
	if existing, err := readPartitionedGroupInfo(ctx, tbkt, p.PartitionedGroupID); err == nil {
		return existing, nil
	}
	if p.CreationTime <= 0 {
		p.CreationTime = time.Now().Unix()
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	if err := tbkt.Upload(ctx, partitionedGroupFile(p.PartitionedGroupID), bytes.NewReader(b)); err != nil {
		return nil, fmt.Errorf("writing partitioned group info %s: %w", partitionedGroupFile(p.PartitionedGroupID), err)
	}
	return &p, nil
}

// listPartitionedGroups reads the tenant's partitioned group info files
// (the visit markers' folder aside), keyed by file name.
func listPartitionedGroups(ctx context.Context, tbkt objstore.Bucket, logger *slog.Logger, skipUnreadable bool) (map[string]*PartitionedGroupInfo, error) {
	out := map[string]*PartitionedGroupInfo{}
	err := tbkt.Iter(ctx, PartitionedGroupDirectory, func(name string) error {
		if strings.Contains(name, PartitionVisitMarkerDirectory) || strings.HasSuffix(name, "/") {
			return nil
		}
		p, err := readPartitionedGroupInfoFile(ctx, tbkt, name)
		if err != nil {
			if skipUnreadable && errors.Is(err, errPartitionedGroupInfoNotFound) {
				// Listed from a cached listing, deleted since.
				return nil
			}
			if skipUnreadable {
				logger.Warn("reading a partitioned group info file", "file", name, "err", err)
				return nil
			}
			return err
		}
		out[name] = p
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing partitioned groups: %w", err)
	}
	return out, nil
}

// partitionedGroupStatus is how far a partitioned group's compaction is,
// from its partitions' visit markers.
type partitionedGroupStatus struct {
	canDelete            bool
	isCompleted          bool
	pendingPartitions    int
	inProgressPartitions int
	// markersToDelete are markers of an older plan with the same ID.
	markersToDelete []string
}

// status reads the group's visit markers as Cortex's
// getPartitionedGroupStatus: a group is completed when every partition's
// marker is; it can be deleted when completed, or, with no partition in
// progress, when a pending partition's source block is gone, marked for
// deletion or marked no-compact (the plan can never finish).
func (p *PartitionedGroupInfo) status(ctx context.Context, tbkt objstore.Bucket, timeout time.Duration, logger *slog.Logger) partitionedGroupStatus {
	var st partitionedGroupStatus
	now := time.Now()
	allCompleted := true
	var pending []Partition
	for _, part := range p.Partitions {
		var m PartitionVisitMarker
		err := readVisitMarker(ctx, tbkt, partitionVisitMarkerPath(p.PartitionedGroupID, part.PartitionID), &m)
		switch {
		case errors.Is(err, errVisitMarkerNotFound):
			st.pendingPartitions++
			allCompleted = false
			pending = append(pending, part)
		case err != nil:
			logger.Warn("reading a partition visit marker", "partitioned_group_id", p.PartitionedGroupID, "partition_id", part.PartitionID, "err", err)
			return partitionedGroupStatus{}
		case m.VisitTime < p.CreationTime || (m.PartitionedGroupCreationTime > 0 && m.PartitionedGroupCreationTime < p.CreationTime):
			st.markersToDelete = append(st.markersToDelete, m.filePath())
			allCompleted = false
		case (m.Status == Pending || m.Status == InProgress) && !m.expired(timeout, now):
			st.inProgressPartitions++
			allCompleted = false
		case m.Status != Completed:
			st.pendingPartitions++
			allCompleted = false
			pending = append(pending, part)
		}
	}
	if st.inProgressPartitions > 0 {
		return st
	}
	st.isCompleted = allCompleted
	if allCompleted {
		st.canDelete = true
		return st
	}
	checked := map[ulid.ULID]struct{}{}
	for _, part := range pending {
		for _, id := range part.Blocks {
			if _, ok := checked[id]; ok {
				continue
			}
			checked[id] = struct{}{}
			if !blockObjectExists(ctx, tbkt, logger, block.MetaPath(id), true) ||
				blockObjectExists(ctx, tbkt, logger, block.DeletionMarkPath(id), false) ||
				blockObjectExists(ctx, tbkt, logger, path.Join(id.String(), block.NoCompactMarkFilename), false) {
				logger.Info("partitioned group can no longer complete", "partitioned_group_id", p.PartitionedGroupID, "block", id)
				st.canDelete = true
				return st
			}
		}
	}
	return st
}

// blockObjectExists reports whether name exists, or onErr when the
// bucket cannot say.
func blockObjectExists(ctx context.Context, tbkt objstore.Bucket, logger *slog.Logger, name string, onErr bool) bool {
	ok, err := tbkt.Exists(ctx, name)
	if err != nil {
		logger.Warn("checking an object of a partitioned group's block", "object", name, "err", err)
		return onErr
	}
	return ok
}
