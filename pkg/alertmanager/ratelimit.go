package alertmanager

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/cortex-tls/cortex/pkg/util/validation"
)

var errRateLimited = errors.New("notification dropped: the tenant's notification rate limit is reached (-alertmanager.notification-rate-limit, -alertmanager.notification-rate-limit-per-integration)")

// rateLimitedNotifier sends through one integration of a receiver at most
// the tenant's notification rate for that integration, as Cortex does: a
// notification over it (however many alerts it carries) is dropped, not
// retried, and counted.
type rateLimitedNotifier struct {
	upstream    notify.Integration
	integration string
	limits      func() *validation.Limits
	limited     prometheus.Counter

	mu      sync.Mutex
	limiter *rate.Limiter
}

// rateLimited wraps in, one integration of a receiver.
func rateLimited(in notify.Integration, receiverName string, limits func() *validation.Limits, limited *prometheus.CounterVec) notify.Integration {
	l := limits()
	n := &rateLimitedNotifier{
		upstream:    in,
		integration: in.Name(),
		limits:      limits,
		limited:     limited.WithLabelValues(in.Name()),
		limiter:     rate.NewLimiter(l.NotificationRateLimit(in.Name()), l.NotificationBurst(in.Name())),
	}
	return notify.NewIntegration(n, &n.upstream, in.Name(), in.Index(), receiverName)
}

// Notify sends, or drops the notification when the limit is reached. The
// limit is read at each notification, so a changed override applies at
// once.
func (n *rateLimitedNotifier) Notify(ctx context.Context, alerts ...*alert.Alert) notify.NotifyVerdict {
	now := time.Now()
	l := n.limits()
	n.mu.Lock()
	if r := l.NotificationRateLimit(n.integration); n.limiter.Limit() != r {
		n.limiter.SetLimitAt(now, r)
	}
	if b := l.NotificationBurst(n.integration); n.limiter.Burst() != b {
		n.limiter.SetBurstAt(now, b)
	}
	ok := n.limiter.AllowN(now, 1)
	n.mu.Unlock()
	if !ok {
		n.limited.Inc()
		return notify.Unrecoverable(errRateLimited, notify.DefaultReason)
	}
	return n.upstream.Notify(ctx, alerts...)
}
