package cortex

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/cortex-tls/cortex/pkg/distributor"
	"github.com/cortex-tls/cortex/pkg/querier"
	"github.com/cortex-tls/cortex/pkg/ruler"
	"github.com/cortex-tls/cortex/pkg/ruler/rulestore"
	"github.com/cortex-tls/cortex/pkg/storage/tsdb/users"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// initRuler builds the ruler: rules from -ruler-storage.*, evaluated over
// the querier's queryable (ingesters and store-gateways, with each tenant's
// query limits), results written through the distributor's Push (validated
// and limited like any write), alerts sent over -ruler.alertmanager-client.
// In a process that runs the distributor or querier module, the ruler uses
// theirs; otherwise (-target=ruler) it builds its own, as Cortex does, and
// serves none of their HTTP routes.
func (t *Cortex) initRuler() (services.Service, error) {
	// The flags' values first, so that a bad one is named before any file
	// is read.
	if err := t.Cfg.Ruler.Validate(); err != nil {
		return nil, err
	}
	amTLS, err := tlsconfig.NewClient(ruler.AlertmanagerClientTLSPrefix, t.Cfg.Ruler.AlertmanagerClient.TLS, t.TLS)
	if err != nil {
		return nil, err
	}
	store, err := rulestore.NewStore(context.Background(), t.Cfg.RulerStorage, t.TLS, t.Logger, t.Registry)
	if err != nil {
		return nil, err
	}
	if c, ok := store.(io.Closer); ok {
		t.closers = append(t.closers, c)
	}

	// deps are the services the ruler reads and writes through: shared with
	// their modules (started by them, awaited here) or its own (started and
	// stopped here).
	var shared []interface{ AwaitRunning(context.Context) error }
	var own []services.Service
	var pusher ruler.Pusher
	if t.Cfg.runs(Distributor) {
		pusher = pusherFunc(func(ctx context.Context, req *prompb.WriteRequest) error { return t.Distributor.Push(ctx, req) })
		shared = append(shared, lazyService(func() services.Service { return t.Distributor }))
	} else {
		d, err := distributor.New(t.Cfg.Distributor, t.Cfg.IngesterClient, t.ingesterTLS, t.Overrides, t.Ring, t.Logger, t.Registry)
		if err != nil {
			return nil, err
		}
		pusher = d
		own = append(own, d)
	}
	var queryable storage.Queryable
	if t.Cfg.runs(Querier) {
		queryable = lazyQueryable(func() storage.Queryable { return t.Querier.Queryable() })
		shared = append(shared, lazyService(func() services.Service { return t.Querier }))
	} else {
		sg, err := t.storeGatewayOption()
		if err != nil {
			return nil, err
		}
		q, err := querier.New(t.Cfg.Querier, t.Cfg.IngesterClient, t.ingesterTLS, t.Overrides, t.Ring, t.Logger, t.Registry, sg)
		if err != nil {
			return nil, err
		}
		queryable = q.Queryable()
		own = append(own, q)
	}

	qc := t.Cfg.Querier
	evalInterval := qc.DefaultEvaluationInterval.Milliseconds()
	engine := ruler.NewEngine(promql.EngineOpts{
		Logger:                   t.Logger.With("component", "ruler"),
		MaxSamples:               qc.MaxSamples,
		Timeout:                  qc.Timeout,
		LookbackDelta:            qc.LookbackDelta,
		NoStepSubqueryIntervalFn: func(int64) int64 { return evalInterval },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		Parser:                   parser.NewParser(qc.ParserOptions()),
	}, t.Registry)
	ruleEngine, err := t.rulerQueryEngine(engine)
	if err != nil {
		return nil, err
	}
	shardOpts, member, err := t.rulerSharding()
	if err != nil {
		return nil, err
	}
	r, err := ruler.New(t.Cfg.Ruler, store, pusher, queryable, ruleEngine, amTLS, t.Logger, t.Registry, append(shardOpts, ruler.WithParserOptions(qc.ParserOptions()))...)
	if err != nil {
		return nil, err
	}
	var svc services.Service = r
	if s, ok := store.(*rulestore.BucketStore); ok {
		if up, every := s.UserIndex(); up != nil {
			// With sharding, the ruler owning the index's name writes it.
			owns := func() bool { return member == nil || member.FirstOwnerOf(users.IndexFilename, ruler.RingOp) }
			own = append(own, users.IndexService(func() *users.IndexUpdater { return up }, every, owns, t.Logger.With("component", "ruler-storage")))
		}
	}
	if member != nil {
		r.RegisterGRPC(t.Server.GRPC)
		t.API.RegisterRulerRing(member)
		svc = r.ShardedService(member)
	}
	t.API.RegisterRuler(r, t.prometheusPrefixes())
	configAPI := ruler.NewConfigAPI(store, t.Overrides, t.Logger, ruler.WithAPIParserOptions(t.Cfg.Querier.ParserOptions()))
	t.API.RegisterRulerAdmin(configAPI)
	if t.Cfg.Ruler.EnableAPI {
		t.API.RegisterRulerConfigAPI(configAPI, t.prometheusPrefixes())
	}

	return services.NewIdleService(func(ctx context.Context) error {
		for _, s := range shared {
			if err := s.AwaitRunning(ctx); err != nil {
				return fmt.Errorf("ruler: waiting for the in-process distributor and querier: %w", err)
			}
		}
		for _, s := range own {
			if err := services.StartAndAwaitRunning(ctx, s); err != nil {
				return fmt.Errorf("ruler: %w", err)
			}
		}
		return services.StartAndAwaitRunning(ctx, svc)
	}, func(error) error {
		errs := []error{services.StopAndAwaitTerminated(context.Background(), svc)}
		for _, s := range own {
			errs = append(errs, services.StopAndAwaitTerminated(context.Background(), s))
		}
		return errors.Join(errs...)
	}), nil
}

// pusherFunc is a Pusher resolved when it is called: the distributor
// module of the process may be initialised after the ruler.
type pusherFunc func(context.Context, *prompb.WriteRequest) error

func (f pusherFunc) Push(ctx context.Context, req *prompb.WriteRequest) error { return f(ctx, req) }

// lazyQueryable is the querier module's queryable, resolved on use.
type lazyQueryable func() storage.Queryable

func (f lazyQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return f().Querier(mint, maxt)
}

// lazyService is another module's service, resolved when awaited.
type lazyService func() services.Service

func (f lazyService) AwaitRunning(ctx context.Context) error { return f().AwaitRunning(ctx) }
