package ingester

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/grafana/dskit/services"
)

// The ingester modes of Cortex's /ingester/mode.
const (
	ModeActive   = "ACTIVE"
	ModeReadOnly = "READONLY"
)

// Mode is the ingester's mode: READONLY while its ring entry carries the
// read-only flag, otherwise its ring state (ACTIVE, JOINING, LEAVING...).
func (i *Ingester) Mode() string {
	if ro, _ := i.lifecycler.GetReadOnlyState(); ro {
		return ModeReadOnly
	}
	return i.lifecycler.GetState().String()
}

// SetReadOnly sets or clears the read-only flag of the ingester's ring
// entry (dskit's InstanceDesc.read_only). Distributors leave a read-only
// ingester out of the ring they write to, so it takes no new samples;
// queriers still read it.
func (i *Ingester) SetReadOnly(ctx context.Context, readOnly bool) error {
	return i.lifecycler.ChangeReadOnlyState(ctx, readOnly)
}

// ModeHandler serves Cortex's /ingester/mode: GET answers the mode;
// POST ?mode=READONLY makes the ingester read-only, ?mode=ACTIVE writable
// again, answering the mode reached ("Ingester mode READONLY", as
// Cortex). Changing the mode needs POST: a GET naming a mode answers 405.
func (i *Ingester) ModeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "reading the mode request: "+err.Error(), http.StatusBadRequest)
			return
		}
		if s := i.State(); s != services.Running {
			http.Error(w, "ingester is "+strings.ToLower(s.String()), http.StatusServiceUnavailable)
			return
		}
		switch r.Method {
		case http.MethodGet:
			if r.Form.Has("mode") {
				w.Header().Set("Allow", http.MethodPost)
				http.Error(w, "changing the ingester mode needs POST", http.StatusMethodNotAllowed)
				return
			}
		case http.MethodPost:
			var readOnly bool
			switch mode := strings.ToUpper(r.Form.Get("mode")); mode {
			case ModeReadOnly:
				readOnly = true
			case ModeActive:
			default:
				http.Error(w, fmt.Sprintf("invalid mode %q: want mode=%s or mode=%s", r.Form.Get("mode"), ModeReadOnly, ModeActive), http.StatusBadRequest)
				return
			}
			if err := i.SetReadOnly(r.Context(), readOnly); err != nil {
				http.Error(w, "changing the ingester's read-only flag in the ring: "+err.Error(), http.StatusInternalServerError)
				return
			}
			i.logger.Info("ingester mode changed on request", "read_only", readOnly)
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "the ingester mode is read with GET and changed with POST", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintf(w, "Ingester mode %s", i.Mode())
	})
}
