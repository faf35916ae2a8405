package gossip

import (
	"context"
	"log"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// onceLog logs a failed connection to a peer once per peer and cause within
// a window, so a peer that refuses us (or that we refuse) does not flood the
// log at every gossip round.
type onceLog struct {
	window time.Duration
	mu     sync.Mutex
	seen   map[string]time.Time
}

// maxOnceLogEntries bounds the memory many distinct failures can take.
const maxOnceLogEntries = 4096

func newOnceLog(window time.Duration) *onceLog {
	return &onceLog{window: window, seen: map[string]time.Time{}}
}

func (o *onceLog) log(logger *slog.Logger, peer string, err error) {
	key := peer + "\x00" + err.Error()
	now := time.Now()
	o.mu.Lock()
	if last, ok := o.seen[key]; ok && now.Sub(last) < o.window {
		o.mu.Unlock()
		return
	}
	if len(o.seen) >= maxOnceLogEntries {
		clear(o.seen)
	}
	o.seen[key] = now
	o.mu.Unlock()
	logger.Warn("gossip connection failed", "peer", peer, "err", err)
}

// memberlistLogger turns the memberlist library's "[LEVEL] memberlist: ..."
// lines into structured records at the matching level.
func memberlistLogger(logger *slog.Logger) *log.Logger {
	return log.New(memberlistWriter{logger}, "", 0)
}

type memberlistWriter struct{ logger *slog.Logger }

func (w memberlistWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError, "[ERROR]": slog.LevelError} {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			level, line = l, strings.TrimSpace(rest)
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	if level > slog.LevelDebug && strings.HasSuffix(line, errTransportShutDown.Error()) {
		// memberlist shuts its transport down before its gossip timers:
		// a round that fires in between is part of a normal shutdown.
		level = slog.LevelDebug
	}
	w.logger.Log(context.Background(), level, line)
	return len(p), nil
}
