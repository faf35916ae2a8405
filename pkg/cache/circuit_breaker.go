package cache

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/sony/gobreaker/v2"
)

// CircuitBreakerConfig is Cortex's set-async circuit breaker block of a
// memcached client (-<prefix>.set-async.circuit-breaker.*): once writes
// fail often enough, further writes are skipped for open-duration rather
// than each waiting for its timeout, then a few are let through to probe.
type CircuitBreakerConfig struct {
	Enabled             bool          `yaml:"enabled"`
	HalfOpenMaxRequests uint          `yaml:"half_open_max_requests"`
	OpenDuration        time.Duration `yaml:"open_duration"`
	MinRequests         uint          `yaml:"min_requests"`
	ConsecutiveFailures uint          `yaml:"consecutive_failures"`
	FailurePercent      float64       `yaml:"failure_percent"`
}

// RegisterFlagsWithPrefix registers -<prefix>circuit-breaker.* with
// Cortex's defaults; prefix ends with a dot.
func (c *CircuitBreakerConfig) RegisterFlagsWithPrefix(prefix string, f *flag.FlagSet) {
	f.BoolVar(&c.Enabled, prefix+"circuit-breaker.enabled", false, "If true, enable circuit breaker.")
	f.UintVar(&c.HalfOpenMaxRequests, prefix+"circuit-breaker.half-open-max-requests", 10, "Maximum number of requests allowed to pass through when the circuit breaker is half-open. If set to 0, by default it allows 1 request.")
	f.DurationVar(&c.OpenDuration, prefix+"circuit-breaker.open-duration", 5*time.Second, "Period of the open state after which the state of the circuit breaker becomes half-open. If set to 0, by default open duration is 60 seconds.")
	f.UintVar(&c.MinRequests, prefix+"circuit-breaker.min-requests", 50, "Minimal requests to trigger the circuit breaker.")
	f.UintVar(&c.ConsecutiveFailures, prefix+"circuit-breaker.consecutive-failures", 5, "Consecutive failures to determine if the circuit breaker should open.")
	f.Float64Var(&c.FailurePercent, prefix+"circuit-breaker.failure-percent", 0.05, "Failure percentage to determine if the circuit breaker should open.")
}

// Validate checks the block registered under prefix (ending with a dot),
// as Thanos does.
func (c *CircuitBreakerConfig) Validate(prefix string) error {
	if !c.Enabled {
		return nil
	}
	if c.ConsecutiveFailures == 0 {
		return fmt.Errorf("-%scircuit-breaker.consecutive-failures must be positive", prefix)
	}
	if c.FailurePercent <= 0 || c.FailurePercent > 1 {
		return fmt.Errorf("-%scircuit-breaker.failure-percent must be in (0, 1], got %v", prefix, c.FailurePercent)
	}
	if c.OpenDuration < 0 {
		return fmt.Errorf("-%scircuit-breaker.open-duration must not be negative", prefix)
	}
	return nil
}

// circuitBreaker runs operations through gobreaker, as Thanos' memcached
// client does; the nil *circuitBreaker runs them as they are.
type circuitBreaker struct {
	cb *gobreaker.CircuitBreaker[struct{}]
}

func newCircuitBreaker(name string, c CircuitBreakerConfig) *circuitBreaker {
	if !c.Enabled {
		return nil
	}
	return &circuitBreaker{cb: gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: uint32(c.HalfOpenMaxRequests),
		Interval:    10 * time.Second,
		Timeout:     c.OpenDuration,
		ReadyToTrip: func(counts gobreaker.Counts) bool {
			return counts.Requests >= uint32(c.MinRequests) &&
				(counts.ConsecutiveFailures >= uint32(c.ConsecutiveFailures) ||
					float64(counts.TotalFailures)/float64(counts.Requests) >= c.FailurePercent)
		},
	})}
}

func (b *circuitBreaker) execute(f func() error) error {
	if b == nil {
		return f()
	}
	_, err := b.cb.Execute(func() (struct{}, error) { return struct{}{}, f() })
	return err
}

// isOpen reports whether err is the breaker refusing an operation.
func isOpen(err error) bool {
	return errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests)
}
