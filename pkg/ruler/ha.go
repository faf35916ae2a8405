package ruler

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cortex-tls/cortex/pkg/ruler/rulestore"
	"github.com/cortex-tls/cortex/pkg/tenant"
)

// LivenessCheck answers another ruler's liveness check: running, or
// Unavailable while this ruler starts or stops.
func (s rulesServer) LivenessCheck(context.Context, *emptypb.Empty) (*wrapperspb.Int32Value, error) {
	if st := s.r.State(); st != services.Running {
		return nil, status.Errorf(codes.Unavailable, "the ruler is %s, not running", st)
	}
	return wrapperspb.Int32(int32(services.Running)), nil
}

// LivenessChecker asks the ruler at addr, for tenant user's group, whether
// it is running; an error or a timeout counts as not running.
type LivenessChecker interface {
	Live(ctx context.Context, user, addr string) bool
}

// Live calls addr's LivenessCheck over the pool's -ruler.client link.
func (p *ClientPool) Live(ctx context.Context, user, addr string) bool {
	c, err := p.client(addr)
	if err != nil {
		return false
	}
	resp, err := c.LivenessCheck(tenant.Inject(ctx, user), &emptypb.Empty{})
	return err == nil && services.State(resp.GetValue()) == services.Running
}

// livenessMemo is how long a liveness answer is reused: one sync asks each
// ruler ahead of this one once, not once for each of the groups they share.
const livenessMemo = time.Second

// HARingOwner is the OwnerFunc of -ruler.enable-ha-evaluation, Cortex's: a
// group's replicas are the first -ruler.ring.replication-factor healthy
// rulers from its token, in ring order. The first evaluates it; each of
// the others evaluates it when none of the replicas ahead of it answers a
// liveness check as running within timeout (-ruler.liveness-check-timeout),
// so that a ruler that died, and has not yet left the ring or missed its
// heartbeats, has its groups taken over at the next sync. A ruler that
// left the ring or whose heartbeat timed out is no replica at all.
func HARingOwner(r ring.ReadRing, addr string, shards TenantShards, live LivenessChecker, timeout time.Duration, logger *slog.Logger) OwnerFunc {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	memo := &livenessMemoCache{live: live, timeout: timeout, answers: map[string]livenessAnswer{}}
	return func(g rulestore.RuleGroup) bool {
		rs, err := shards.Ring(r, g.User).Get(tokenForGroup(g.User, g.Namespace, g.Group.Name), RingOp, nil, nil, nil)
		if err != nil {
			return false
		}
		for i, inst := range rs.Instances {
			if inst.Addr != addr {
				continue
			}
			if i == 0 {
				return true
			}
			ahead := rs.GetAddresses()[:i]
			if memo.anyRunning(g.User, ahead) {
				return false
			}
			logger.Info("no ruler ahead of this one for the group answers as running: evaluating it here", "user", g.User, "namespace", g.Namespace, "group", g.Group.Name, "rulers_ahead", ahead)
			return true
		}
		return false
	}
}

type livenessAnswer struct {
	running bool
	at      time.Time
}

type livenessMemoCache struct {
	live    LivenessChecker
	timeout time.Duration

	mu      sync.Mutex
	answers map[string]livenessAnswer
}

// anyRunning reports whether any of addrs answers as running, asking
// those without a recent answer at once.
func (c *livenessMemoCache) anyRunning(user string, addrs []string) bool {
	now := time.Now()
	var ask []string
	c.mu.Lock()
	for _, a := range addrs {
		if ans, ok := c.answers[a]; ok && now.Sub(ans.at) < livenessMemo {
			if ans.running {
				c.mu.Unlock()
				return true
			}
			continue
		}
		ask = append(ask, a)
	}
	c.mu.Unlock()
	if len(ask) == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	results := make([]bool, len(ask))
	var wg sync.WaitGroup
	for i, a := range ask {
		wg.Go(func() { results[i] = c.live.Live(ctx, user, a) })
	}
	wg.Wait()
	running := false
	c.mu.Lock()
	for i, a := range ask {
		c.answers[a] = livenessAnswer{running: results[i], at: now}
		running = running || results[i]
	}
	for a, ans := range c.answers {
		if now.Sub(ans.at) >= livenessMemo {
			delete(c.answers, a)
		}
	}
	c.mu.Unlock()
	return running
}
