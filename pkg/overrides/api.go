// Package overrides is Cortex's user overrides API (-target=overrides):
// GET, POST and DELETE /api/v1/user-overrides let a tenant read and change
// its own entry under overrides in the runtime configuration object of
// -runtime-config.backend, within what the operator allows in the same
// file: the limits named by api_allowed_limits, each no higher than the
// tenant's hard_overrides.
package overrides

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/thanos-io/objstore"
	"gopkg.in/yaml.v3"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// maxBodyBytes bounds a POST's JSON body: a tenant's overrides are a few
// dozen numbers.
const maxBodyBytes = 64 << 10

// API serves the user overrides of one runtime configuration object.
type API struct {
	bkt objstore.Bucket
	key string
	// check loads a whole runtime configuration as every component would,
	// so that a change is written only when the file stays loadable.
	check  func([]byte) error
	logger *slog.Logger
	origin *http.CrossOriginProtection

	// mu serialises this instance's read-modify-write of the object.
	mu sync.Mutex
}

// New serves the runtime configuration object key of bkt.
func New(bkt objstore.Bucket, key string, check func([]byte) error, logger *slog.Logger) *API {
	return &API{bkt: bkt, key: key, check: check, logger: logger, origin: http.NewCrossOriginProtection()}
}

// errNotFound answers a tenant without overrides.
var errNotFound = errors.New("not found")

// requestError is a refused request: answered 400 with its text.
type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }

// GetOverrides answers the tenant's overrides as JSON, 404 when it has none.
func (a *API) GetOverrides(w http.ResponseWriter, r *http.Request) {
	userID, ok := a.tenant(w, r)
	if !ok {
		return
	}
	doc, err := a.read(r.Context())
	if err != nil {
		a.fail(w, userID, err)
		return
	}
	mine, _ := mapping(doc["overrides"])[userID].(map[string]any)
	if len(mine) == 0 {
		http.Error(w, errNotFound.Error(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(mine)
}

// SetOverrides merges the JSON object of the body into the tenant's
// overrides.
func (a *API) SetOverrides(w http.ResponseWriter, r *http.Request) {
	userID, ok := a.writer(w, r)
	if !ok {
		return
	}
	var changes map[string]any
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.UseNumber()
	if err := dec.Decode(&changes); err != nil {
		http.Error(w, "invalid JSON: "+err.Error(), http.StatusBadRequest)
		return
	}
	for k, v := range changes {
		if n, ok := v.(json.Number); ok {
			changes[k] = numberValue(n)
		}
	}
	err := a.change(r.Context(), userID, func(doc map[string]any) error {
		if err := allowed(doc, userID, changes); err != nil {
			return err
		}
		all := mapping(doc["overrides"])
		mine := mapping(all[userID])
		for k, v := range changes {
			mine[k] = v
		}
		all[userID] = mine
		doc["overrides"] = all
		return nil
	})
	if err != nil {
		a.fail(w, userID, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// DeleteOverrides removes the tenant's overrides: its limits are the
// defaults again.
func (a *API) DeleteOverrides(w http.ResponseWriter, r *http.Request) {
	userID, ok := a.writer(w, r)
	if !ok {
		return
	}
	err := a.change(r.Context(), userID, func(doc map[string]any) error {
		all := mapping(doc["overrides"])
		delete(all, userID)
		doc["overrides"] = all
		return nil
	})
	if err != nil {
		a.fail(w, userID, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (a *API) tenant(w http.ResponseWriter, r *http.Request) (string, bool) {
	userID, err := tenant.ID(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return "", false
	}
	return userID, true
}

// writer is tenant for changes, refused with 403 when a browser sends
// them on behalf of another site.
func (a *API) writer(w http.ResponseWriter, r *http.Request) (string, bool) {
	if err := a.origin.Check(r); err != nil {
		http.Error(w, "forbidden: overrides are not changed by a browser request from another site ("+err.Error()+")", http.StatusForbidden)
		return "", false
	}
	return a.tenant(w, r)
}

func (a *API) fail(w http.ResponseWriter, userID string, err error) {
	var re *requestError
	if errors.As(err, &re) {
		http.Error(w, re.msg, http.StatusBadRequest)
		return
	}
	a.logger.Error("user overrides: the runtime configuration could not be read or written", "user", userID, "object", a.key, "err", err)
	http.Error(w, "internal server error: the runtime configuration could not be read or written", http.StatusInternalServerError)
}

// read decodes the runtime configuration object; a missing object is an
// empty configuration.
func (a *API) read(ctx context.Context) (map[string]any, error) {
	rc, err := a.bkt.Get(ctx, a.key)
	if a.bkt.IsObjNotFoundErr(err) {
		return map[string]any{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", a.key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", a.key, err)
	}
	doc := map[string]any{}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", a.key, err)
	}
	return doc, nil
}

// change applies f to the runtime configuration and writes it back when
// the result loads as every component would load it.
func (a *API) change(ctx context.Context, userID string, f func(map[string]any) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	doc, err := a.read(ctx)
	if err != nil {
		return err
	}
	if err := f(doc); err != nil {
		return err
	}
	data, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	if err := a.check(data); err != nil {
		return &requestError{fmt.Sprintf("invalid overrides for tenant %s: %v", userID, err)}
	}
	return a.bkt.Upload(ctx, a.key, bytes.NewReader(data))
}

// allowed refuses limits the operator has not opened to the API
// (api_allowed_limits) and values over the tenant's hard_overrides.
func allowed(doc map[string]any, userID string, changes map[string]any) error {
	var permitted []string
	if list, ok := doc["api_allowed_limits"].([]any); ok {
		for _, v := range list {
			if s, ok := v.(string); ok {
				permitted = append(permitted, s)
			}
		}
	}
	var refused []string
	for k := range changes {
		if !slices.Contains(permitted, k) {
			refused = append(refused, k)
		}
	}
	if len(refused) > 0 {
		sort.Strings(refused)
		return &requestError{fmt.Sprintf("the following limits cannot be modified via the overrides API: %s (the runtime configuration's api_allowed_limits lists those that can)", strings.Join(refused, ", "))}
	}
	hard := mapping(mapping(doc["hard_overrides"])[userID])
	for k, v := range changes {
		limit, ok := hard[k]
		if !ok {
			continue
		}
		value, vok := toFloat(v)
		max, mok := toFloat(limit)
		if !vok || !mok {
			continue
		}
		if value > max {
			return &requestError{fmt.Sprintf("limit %s exceeds hard limit: %s > %s (hard_overrides of tenant %s)", k, fmt.Sprint(v), fmt.Sprint(limit), userID)}
		}
	}
	return nil
}

func mapping(v any) map[string]any {
	if m, ok := v.(map[string]any); ok {
		return m
	}
	return map[string]any{}
}

// numberValue keeps a JSON integer an integer in the YAML written.
func numberValue(n json.Number) any {
	if i, err := n.Int64(); err == nil {
		return i
	}
	if f, err := n.Float64(); err == nil && !math.IsInf(f, 0) {
		return f
	}
	return n.String()
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}
