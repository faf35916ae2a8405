package configs

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/cortex-tls/cortex/pkg/configs/db"
)

// emailAM routes to a receiver with an email config, as Cortex's tests do.
const emailAM = `route:
  receiver: mail
receivers:
- name: mail
  email_configs:
  - to: oncall@example.org
    from: alertmanager@example.org
    smarthost: smtp.example.org:587
`

// slackAM has neither an email nor a webhook receiver.
const slackAM = `route:
  receiver: chat
receivers:
- name: chat
  slack_configs:
  - api_url: https://hooks.slack.example/services/x
    channel: '#alerts'
`

// The notifications settings refuse, on both the store and the validate
// endpoints, a configuration with a receiver of the kind they disable,
// with Cortex's error text and status 400; everything else is accepted.
func TestNotificationsSettings(t *testing.T) {
	const (
		am       = "/api/prom/configs/alertmanager"
		email    = `email notifications are disabled: receiver "mail" has email_configs (-configs.notifications.disable-email)`
		webhook  = `webhook notifications are disabled: receiver "team" has webhook_configs (-configs.notifications.disable-webhook)`
		accepted = ""
	)
	for _, tc := range []struct {
		name                 string
		settings             NotificationsConfig
		emailWant, hookWant  string
		slackWant, validWant string
	}{
		{"defaults", NotificationsConfig{}, accepted, accepted, accepted, accepted},
		{"email disabled", NotificationsConfig{DisableEmail: true}, email, accepted, accepted, accepted},
		{"webhook disabled", NotificationsConfig{DisableWebhook: true}, accepted, webhook, accepted, accepted},
		{"both disabled", NotificationsConfig{DisableEmail: true, DisableWebhook: true}, email, webhook, accepted, accepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := db.Open(context.Background(), "file:"+t.TempDir()+"/c.db", slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			c := client{t: t, h: NewAPI(d, slog.New(slog.DiscardHandler), WithNotifications(tc.settings)).Handler(true)}
			for _, cfg := range []struct{ name, yaml, want string }{
				{"email", emailAM, tc.emailWant},
				{"webhook", validAM, tc.hookWant},
				{"slack", slackAM, tc.slackWant},
			} {
				code, body := c.do("POST", am, "a", jsonBody(t, AlertmanagerConfig{AlertmanagerConfig: cfg.yaml}))
				if cfg.want == accepted {
					if code != http.StatusNoContent {
						t.Errorf("POST the %s config: %d %s, want 204", cfg.name, code, body)
					}
				} else if want := "invalid Alertmanager config: " + cfg.want; code != http.StatusBadRequest || strings.TrimSpace(body) != want {
					t.Errorf("POST the %s config: %d %q, want 400 %q", cfg.name, code, body, want)
				}

				code, body = c.do("POST", am+"/validate", "a", cfg.yaml)
				want, wantCode := validateResponse{Status: "success"}, http.StatusOK
				if cfg.want != accepted {
					want, wantCode = validateResponse{Status: "error", Error: "invalid Alertmanager config: " + cfg.want}, http.StatusBadRequest
				}
				var got validateResponse
				if err := json.Unmarshal([]byte(body), &got); err != nil || code != wantCode || got != want {
					t.Errorf("validate the %s config: %d %s, want %d %+v", cfg.name, code, body, wantCode, want)
				}
			}
		})
	}
}

func TestNotificationsFlags(t *testing.T) {
	var cfg Config
	fs := newFlagSet()
	cfg.RegisterFlags(fs)
	if cfg.API.Notifications != (NotificationsConfig{}) {
		t.Fatalf("defaults %+v, want both kinds allowed as in Cortex", cfg.API.Notifications)
	}
	if err := fs.Parse([]string{"-configs.notifications.disable-email", "-configs.notifications.disable-webhook=true"}); err != nil {
		t.Fatal(err)
	}
	if want := (NotificationsConfig{DisableEmail: true, DisableWebhook: true}); cfg.API.Notifications != want {
		t.Fatalf("after the flags: %+v, want %+v", cfg.API.Notifications, want)
	}
}
