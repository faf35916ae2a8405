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
	"time"

	"github.com/thanos-io/objstore"

	"github.com/cortex-tls/cortex/pkg/storage/tsdb/block"
)

// VisitStatus is a visit marker's status, in Cortex's spelling.
type VisitStatus string

// A visit goes pending (claimed, not started), in progress (refreshed
// every update interval while the work runs), then completed, failed, or
// back to pending when the work stopped short.
const (
	Pending    VisitStatus = "pending"
	InProgress VisitStatus = "inProgress"
	Completed  VisitStatus = "completed"
	Failed     VisitStatus = "failed"
)

const (
	// PartitionedGroupDirectory is the tenant's folder of partitioned
	// group info files (<ID>.json) and their partitions' visit markers.
	PartitionedGroupDirectory = "partitioned-groups"
	// PartitionVisitMarkerDirectory holds, under PartitionedGroupDirectory,
	// one folder of partition visit markers per partitioned group.
	PartitionVisitMarkerDirectory  = "visit-marks"
	partitionVisitMarkerFilePrefix = "partition-"
	partitionVisitMarkerFileSuffix = "visit-mark.json"
	// CleanerVisitMarkerName is the cleaner's visit marker, in the
	// tenant's markers/ folder.
	CleanerVisitMarkerName = "cleaner-visit-marker.json"

	visitMarkerVersion1 = 1
)

var errVisitMarkerNotFound = errors.New("visit marker not found")

// visitMarker is the content of a visit marker file.
type visitMarker interface {
	filePath() string
	setStatus(owner string, status VisitStatus, now time.Time)
}

// PartitionVisitMarker is Cortex's partition visit marker: which
// compactor visits a partition of a partitioned group, and how far it is.
type PartitionVisitMarker struct {
	CompactorID        string      `json:"compactorID"`
	Status             VisitStatus `json:"status"`
	PartitionedGroupID uint32      `json:"partitionedGroupID"`
	// PartitionedGroupCreationTime tells the marker of a group's plan
	// from that of an older plan with the same ID.
	PartitionedGroupCreationTime int64 `json:"partitionedGroupCreationTime"`
	PartitionID                  int   `json:"partitionID"`
	// VisitTime is when the marker was last written, in unix seconds.
	VisitTime int64 `json:"visitTime"`
	Version   int   `json:"version"`
}

func (m *PartitionVisitMarker) filePath() string {
	return partitionVisitMarkerPath(m.PartitionedGroupID, m.PartitionID)
}

func (m *PartitionVisitMarker) setStatus(owner string, status VisitStatus, now time.Time) {
	m.CompactorID, m.Status, m.VisitTime, m.Version = owner, status, now.Unix(), visitMarkerVersion1
}

// expired reports whether the marker is older than timeout: its visitor
// stopped refreshing it, and another compactor may take the partition.
func (m *PartitionVisitMarker) expired(timeout time.Duration, now time.Time) bool {
	return !now.Before(time.Unix(m.VisitTime, 0).Add(timeout))
}

// CleanerVisitMarker is Cortex's cleaner visit marker: the compactor
// cleaning a tenant up, so that no other cleans it at the same time.
type CleanerVisitMarker struct {
	CompactorID string      `json:"compactorID"`
	Status      VisitStatus `json:"status"`
	VisitTime   int64       `json:"visitTime"`
	Version     int         `json:"version"`
}

func (m *CleanerVisitMarker) filePath() string {
	return path.Join(block.MarkersDirname, CleanerVisitMarkerName)
}

func (m *CleanerVisitMarker) setStatus(owner string, status VisitStatus, now time.Time) {
	m.CompactorID, m.Status, m.VisitTime, m.Version = owner, status, now.Unix(), visitMarkerVersion1
}

// visited reports whether another cleanup of the tenant holds the
// marker: neither finished nor stale.
func (m *CleanerVisitMarker) visited(timeout time.Duration, now time.Time) bool {
	return m.Status != Completed && m.Status != Failed && now.Before(time.Unix(m.VisitTime, 0).Add(timeout))
}

func partitionVisitMarkerDir(partitionedGroupID uint32) string {
	return path.Join(PartitionedGroupDirectory, PartitionVisitMarkerDirectory, fmt.Sprint(partitionedGroupID))
}

func partitionVisitMarkerPath(partitionedGroupID uint32, partitionID int) string {
	return path.Join(partitionVisitMarkerDir(partitionedGroupID), fmt.Sprintf("%s%d-%s", partitionVisitMarkerFilePrefix, partitionID, partitionVisitMarkerFileSuffix))
}

// readVisitMarker reads the marker at name of a tenant's bucket into v;
// errVisitMarkerNotFound when there is none.
func readVisitMarker(ctx context.Context, tbkt objstore.BucketReader, name string, v any) error {
	r, err := tbkt.Get(ctx, name)
	if err != nil {
		if tbkt.IsObjNotFoundErr(err) {
			return fmt.Errorf("%s: %w", name, errVisitMarkerNotFound)
		}
		return fmt.Errorf("reading visit marker %s: %w", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("reading visit marker %s: %w", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parsing visit marker %s: %w", name, err)
	}
	return nil
}

// markVisit writes m with status, owned by owner.
func markVisit(ctx context.Context, tbkt objstore.Bucket, m visitMarker, owner string, status VisitStatus) error {
	m.setStatus(owner, status, time.Now())
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := tbkt.Upload(ctx, m.filePath(), bytes.NewReader(b)); err != nil {
		return fmt.Errorf("writing visit marker %s: %w", m.filePath(), err)
	}
	return nil
}

// visitHeartbeat keeps a visit marker in progress while its work runs,
// as Cortex's VisitMarkerManager.HeartBeat does.
type visitHeartbeat struct {
	result   chan error
	finished chan struct{}
}

// startVisitHeartbeat marks m in progress now and every interval until
// finish: then completed (nil error), failed (a halt error), or pending
// again (the work failed and may be retried), or pending when ctx ends
// first. With deleteOnExit
// the marker is removed at the end instead.
func startVisitHeartbeat(ctx context.Context, tbkt objstore.Bucket, logger *slog.Logger, owner string, m visitMarker, interval time.Duration, deleteOnExit bool) *visitHeartbeat {
	h := &visitHeartbeat{result: make(chan error, 1), finished: make(chan struct{})}
	mark := func(ctx context.Context, s VisitStatus) {
		if err := markVisit(ctx, tbkt, m, owner, s); err != nil {
			logger.Warn("updating a visit marker", "marker", m.filePath(), "status", s, "err", err)
		}
	}
	go func() {
		defer close(h.finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		mark(ctx, InProgress)
	loop:
		for {
			select {
			case <-ctx.Done():
				mark(context.Background(), Pending)
				break loop
			case <-t.C:
				mark(ctx, InProgress)
			case err := <-h.result:
				switch {
				case err == nil:
					mark(ctx, Completed)
				case isHaltError(err):
					mark(ctx, Failed)
				default:
					mark(ctx, Pending)
				}
				break loop
			}
		}
		if deleteOnExit {
			if err := tbkt.Delete(context.Background(), m.filePath()); err != nil && !tbkt.IsObjNotFoundErr(err) {
				logger.Warn("deleting a visit marker", "marker", m.filePath(), "err", err)
			}
		}
	}()
	return h
}

// isHaltError reports whether err is one retrying cannot fix, as Thanos'
// halt errors: a source block with out-of-order chunks. Its partition is
// marked failed rather than pending.
func isHaltError(err error) bool {
	var ooo outOfOrderChunksError
	return errors.As(err, &ooo)
}

// finish ends the heartbeat with the work's result and waits for the
// marker's last write.
func (h *visitHeartbeat) finish(err error) {
	h.result <- err
	<-h.finished
}
