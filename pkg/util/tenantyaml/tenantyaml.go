// Package tenantyaml writes an answer listing every tenant's configuration
// as one YAML map of tenant ID to its configuration, streamed a few tenants
// at a time: Cortex's /ruler/rule_groups and
// /multitenant_alertmanager/configs. Each tenant's entry is a document of
// its own ("<tenant>: ..."), so that the concatenation is one map, and
// memory holds at most Concurrency tenants' configurations, whatever the
// number of tenants.
package tenantyaml

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	"github.com/grafana/dskit/concurrency"
)

// Concurrency is the number of tenants read from the store at once, as in
// Cortex (its fetchConcurrency and fetchRulesConcurrency).
const Concurrency = 16

// Fetch reads one tenant's configuration; ok false leaves the tenant out
// (it has none any more).
type Fetch[T any] func(ctx context.Context, tenant string) (v T, ok bool, err error)

// Write answers 200 with the configurations of tenants, in tenant order,
// each marshalled by marshal as a one-key map; with none, the body is
// empty, as Cortex's. Tenants are read
// Concurrency at a time, and written before the next ones are read. A
// failed read before anything was written answers 500; after, the answer
// ends with a YAML comment naming the error, which is also logged, so that
// a truncated list is not taken for the whole.
func Write[T any](w http.ResponseWriter, r *http.Request, tenants []string, fetch Fetch[T], marshal func(any) ([]byte, error), logger *slog.Logger) {
	tenants = slices.Sorted(slices.Values(tenants))
	w.Header().Set("Content-Type", "application/yaml")
	written := false
	for start := 0; start < len(tenants); start += Concurrency {
		batch := tenants[start:min(start+Concurrency, len(tenants))]
		docs := make([][]byte, len(batch))
		err := concurrency.ForEachJob(r.Context(), len(batch), Concurrency, func(ctx context.Context, i int) error {
			v, ok, err := fetch(ctx, batch[i])
			if err != nil || !ok {
				return err
			}
			b, err := marshal(map[string]T{batch[i]: v})
			if err != nil {
				return fmt.Errorf("tenant %q: encoding as YAML: %w", batch[i], err)
			}
			docs[i] = b
			return nil
		})
		if err != nil {
			logger.Error("listing every tenant's configuration failed", "err", err)
			if !written {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			_, _ = fmt.Fprintf(w, "# the list stops here: %s\n", oneLine(err.Error()))
			return
		}
		for _, d := range docs {
			if d == nil {
				continue
			}
			if _, err := w.Write(d); err != nil {
				return // the client went away
			}
			written = true
		}
	}
}

// oneLine keeps a comment on one line.
func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	return string(b)
}
