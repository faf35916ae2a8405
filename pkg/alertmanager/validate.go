package alertmanager

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/prometheus/alertmanager/config"
	amcommoncfg "github.com/prometheus/alertmanager/config/common"
)

// checkNoHostFiles refuses a tenant configuration that names a file on the
// alertmanager's host (password_file, bearer_token_file, tls_config's
// ca_file, ...): a tenant could otherwise send another tenant's or the
// process's secrets to a receiver it controls. Inline values (ca, password,
// ...) are the way to give them. The operator's fallback is not checked.
func checkNoHostFiles(c *config.Config) error {
	var found []string
	seen := map[uintptr]bool{}
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if v.IsNil() {
				return
			}
			if v.Kind() == reflect.Pointer {
				if seen[v.Pointer()] {
					return
				}
				seen[v.Pointer()] = true
			}
			walk(v.Elem(), path)
		case reflect.Struct:
			t := v.Type()
			for i := range t.NumField() {
				f := t.Field(i)
				if !f.IsExported() {
					continue
				}
				name := strings.Split(f.Tag.Get("yaml"), ",")[0]
				if name == "-" {
					continue
				}
				fv := v.Field(i)
				if name != "" && strings.HasSuffix(name, "_file") && fv.Kind() == reflect.String && fv.String() != "" {
					found = append(found, join(path, name))
					continue
				}
				if name == "" { // inlined
					walk(fv, path)
				} else {
					walk(fv, join(path, name))
				}
			}
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i))
			}
		case reflect.Map:
			for _, k := range v.MapKeys() {
				walk(v.MapIndex(k), fmt.Sprintf("%s[%v]", path, k))
			}
		}
	}
	walk(reflect.ValueOf(c), "")
	if len(found) > 0 {
		return fmt.Errorf("a tenant's configuration may not read files on the alertmanager's host; give the value inline instead (ca: instead of ca_file:, password: instead of password_file:, ...): %s", strings.Join(found, ", "))
	}
	return nil
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// autoWebhookURL is the webhook URL that -alertmanager.configs.auto-webhook-root
// replaces, Cortex's.
const autoWebhookURL = "http://internal.monitor"

// setAutoWebhooks points every webhook of conf whose URL is autoWebhookURL
// at <root>/<tenant>/monitor, as Cortex does; nothing changes without a
// root.
func setAutoWebhooks(conf *config.Config, root, tenant string) {
	if root == "" {
		return
	}
	for _, r := range conf.Receivers {
		for _, w := range r.WebhookConfigs {
			if string(w.URL) == autoWebhookURL {
				w.URL = amcommoncfg.SecretTemplateURL(strings.TrimRight(root, "/") + "/" + tenant + "/monitor")
			}
		}
	}
}
