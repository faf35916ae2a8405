// Package logging builds the process logger from -log.level and -log.format.
//
// It must not import other packages of this module and keeps no global
// logger: the logger it builds is passed down explicitly.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// New returns a structured logger writing logfmt (slog's text format) or JSON.
func New(level, format string, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log.level=%q: valid values are debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "logfmt", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("-log.format=%q: valid values are logfmt, json", format)
	}
}
