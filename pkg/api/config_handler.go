package api

import (
	"fmt"
	"net/http"
	"reflect"

	"gopkg.in/yaml.v3"

	"github.com/cortex-tls/cortex/pkg/util/config"
)

// ConfigHandler serves a configuration as YAML, as Cortex's /config and
// /runtime_config do: actual by default, with ?mode=diff only the keys whose
// values differ from defaults, and, when defaultsMode, ?mode=defaults the
// defaults themselves. Secrets are masked (config.Dump). Any other mode is
// refused with 400 naming the valid ones.
func ConfigHandler(actual, defaults any, defaultsMode bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var out any
		switch mode := r.URL.Query().Get("mode"); {
		case mode == "":
			out = actual
		case mode == "diff":
			diff, err := DiffConfig(defaults, actual)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			out = diff
		case mode == "defaults" && defaultsMode:
			out = defaults
		default:
			valid := "diff"
			if defaultsMode {
				valid = "diff or defaults"
			}
			http.Error(w, fmt.Sprintf("unknown mode %q: use mode=%s, or no mode for the configuration in force", mode, valid), http.StatusBadRequest)
			return
		}
		buf, err := config.Dump(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// No content type is standard for YAML; text/plain shows it in a
		// browser instead of offering a download, as in Cortex.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(buf)
	})
}

// DiffConfig returns the keys of actual, as YAML, whose values differ from
// those of defaults, nested blocks reduced to the keys that differ.
func DiffConfig(defaults, actual any) (map[string]any, error) {
	d, err := yamlMap(defaults)
	if err != nil {
		return nil, err
	}
	a, err := yamlMap(actual)
	if err != nil {
		return nil, err
	}
	return diffMaps(d, a), nil
}

func yamlMap(v any) (map[string]any, error) {
	buf, err := config.Dump(v)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	if err := yaml.Unmarshal(buf, &out); err != nil {
		return nil, fmt.Errorf("reading the configuration back: %w", err)
	}
	return out, nil
}

func diffMaps(defaults, actual map[string]any) map[string]any {
	out := map[string]any{}
	for key, value := range actual {
		def, ok := defaults[key]
		if !ok {
			out[key] = value
			continue
		}
		if vm, isMap := value.(map[string]any); isMap {
			if dm, ok := def.(map[string]any); ok {
				if sub := diffMaps(dm, vm); len(sub) > 0 {
					out[key] = sub
				}
				continue
			}
		}
		if !reflect.DeepEqual(def, value) {
			out[key] = value
		}
	}
	return out
}
