// Package kitlog lets libraries that log through go-kit (dskit, Prometheus
// TSDB) log through the process's slog logger.
//
// It is an adapter only: it must not import other packages of this module,
// and it drops no record itself; the process logger's -log.level decides
// what is written.
package kitlog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/go-kit/log"
)

// New returns a go-kit logger that writes to l.
func New(l *slog.Logger) log.Logger { return logger{l} }

type logger struct{ l *slog.Logger }

func (k logger) Log(kv ...any) error {
	level, msg := slog.LevelInfo, ""
	var attrs []any
	for i := 0; i+1 < len(kv); i += 2 {
		key := fmt.Sprint(kv[i])
		switch key {
		case "level":
			_ = level.UnmarshalText([]byte(fmt.Sprint(kv[i+1])))
		case "msg":
			msg = fmt.Sprint(kv[i+1])
		default:
			attrs = append(attrs, key, kv[i+1])
		}
	}
	k.l.Log(context.Background(), level, msg, attrs...)
	return nil
}
