package grpcclient

import (
	"context"
	"strings"

	"github.com/grafana/dskit/backoff"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The two interceptors are Cortex's (and dskit's grpcclient's, whose
// package would bring in opentracing's gRPC module for these twenty lines).

// healthMethods prefixes the gRPC health service's methods: the client's
// own health checks neither wait for nor use up the link's rate limit.
const healthMethods = "/grpc.health.v1.Health/"

// newRateLimiter lets calls through at rate per second with bursts of
// burst; a call that would have to wait past its deadline fails at once
// with ResourceExhausted.
func newRateLimiter(r float64, burst int) grpc.UnaryClientInterceptor {
	limiter := rate.NewLimiter(rate.Limit(r), burst)
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if !strings.HasPrefix(method, healthMethods) {
			if err := limiter.Wait(ctx); err != nil {
				return status.Error(codes.ResourceExhausted, "gRPC client rate limit: "+err.Error())
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// newBackoffRetry retries a call answered with ResourceExhausted after an
// exponential backoff, at most cfg.MaxRetries times in all (0: until the
// call's context ends).
func newBackoffRetry(cfg backoff.Config) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		b := backoff.New(ctx, cfg)
		var err error
		for b.Ongoing() {
			err = invoker(ctx, method, req, reply, cc, opts...)
			if status.Code(err) != codes.ResourceExhausted {
				return err
			}
			b.Wait()
		}
		return status.Errorf(codes.ResourceExhausted, "%s (%v)", status.Convert(err).Message(), b.Err())
	}
}
