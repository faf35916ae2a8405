package querier

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/cortex-tls/cortex/pkg/util/queryprotection"
)

// Bounds on a query's memory that the engine does not check early enough.
//
// A subquery is evaluated by a child evaluator over its own step grid: the
// engine allocates two int64 per step for per-step statistics before
// evaluating anything (16 bytes a step, whatever the data), and the inner
// expression's output holds up to one point per step and series. The
// engine's -querier.max-samples counts only those output points, as they
// are appended, so count_over_time(vector(1)[1d:1ms]) allocates 1.4 GB of
// statistics and then grows its output to 50 million points before the
// limit fires. Here subqueries are checked before evaluation, from the
// expression and the query's range alone.

// maxSubqueryStepsFlag names the subquery resolution limit in errors.
const maxSubqueryStepsFlag = "-querier.max-subquery-steps (max_subquery_steps)"

// subqueryLimitError is a query refused before evaluation for the memory
// its subqueries would take. The query is at fault: the API answers 400.
type subqueryLimitError struct{ msg string }

func (e *subqueryLimitError) Error() string { return e.msg }

// HTTPStatus is the status the API answers the refused query with.
func (e *subqueryLimitError) HTTPStatus() int { return http.StatusBadRequest }

// ErrorType is the Prometheus API errorType of the refusal.
func (e *subqueryLimitError) ErrorType() string { return string(errorBadData) }

// limitedEngine is the querier's PromQL engine with its subquery checks.
type limitedEngine struct {
	engine *promql.Engine
	parser parser.Parser
	// maxSubquerySteps bounds range/step of each subquery; 0 disables.
	maxSubquerySteps int64
	// maxSamples bounds the steps all subqueries evaluate together;
	// 0 disables.
	maxSamples int64
	// defaultStep is the step, in ms, of subqueries that give none.
	defaultStep int64
}

var _ promql.QueryEngine = (*limitedEngine)(nil)

// NewInstantQuery checks the subqueries of qs and returns the engine's query.
func (e *limitedEngine) NewInstantQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	if err := e.checkSubqueries(qs, 0); err != nil {
		return nil, err
	}
	return e.engine.NewInstantQuery(ctx, q, opts, qs, ts)
}

// NewRangeQuery checks the subqueries of qs over [start, end] and returns
// the engine's query.
func (e *limitedEngine) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, interval time.Duration) (promql.Query, error) {
	if err := e.checkSubqueries(qs, end.Sub(start).Milliseconds()); err != nil {
		return nil, err
	}
	return e.engine.NewRangeQuery(ctx, q, opts, qs, start, end, interval)
}

// checkSubqueries refuses a query with a subquery of more than
// maxSubquerySteps steps (its range divided by its step, as Cortex counts
// them), or whose subqueries evaluate more than maxSamples steps in all.
// span is the query's range in ms (0 for an instant query): a subquery is
// evaluated over that range plus its own, so a range query's subqueries
// evaluate more steps than an instant query's. A query that does not parse
// is left to the engine, which reports the parse error.
func (e *limitedEngine) checkSubqueries(qs string, span int64) error {
	// Every subquery has a colon between its brackets: most queries have
	// none and need no second parse.
	if e.maxSubquerySteps <= 0 && e.maxSamples <= 0 || !strings.Contains(qs, ":") {
		return nil
	}
	expr, err := e.parser.ParseExpr(qs)
	if err != nil {
		return nil
	}
	var total int64
	var walk func(n parser.Node, span int64) error
	walk = func(n parser.Node, span int64) error {
		sq, ok := n.(*parser.SubqueryExpr)
		if !ok {
			for _, c := range parser.Children(n) {
				if err := walk(c, span); err != nil {
					return err
				}
			}
			return nil
		}
		step := sq.Step.Milliseconds()
		if step <= 0 {
			step = e.defaultStep
		}
		rng := sq.Range.Milliseconds()
		if steps := rng / step; e.maxSubquerySteps > 0 && steps > e.maxSubquerySteps {
			return &subqueryLimitError{fmt.Sprintf("the subquery [%s:%s] has %d steps (its range divided by its step), more than the %d points per series allowed by %s: increase the subquery's step or shorten its range",
				model.Duration(sq.Range), model.Duration(time.Duration(step)*time.Millisecond), steps, e.maxSubquerySteps, maxSubqueryStepsFlag)}
		}
		// A subquery pinned by @ is evaluated once, over its own range.
		child := span + rng
		if sq.Timestamp != nil || sq.StartOrEnd != 0 {
			child = rng
		}
		total = addSaturating(total, child/step+1)
		if e.maxSamples > 0 && total > e.maxSamples {
			return &subqueryLimitError{fmt.Sprintf("the query's subqueries evaluate %d steps over the query's range, each held in memory like a sample, more than the limit of %d samples set by -querier.max-samples (max_samples): increase the subqueries' steps or shorten the query's range",
				total, e.maxSamples)}
		}
		return walk(sq.Expr, child)
	}
	return walk(expr, span)
}

func addSaturating(a, b int64) int64 {
	if s := a + b; s >= a {
		return s
	}
	return 1<<63 - 1
}

// guardedQueryable refuses new queries, and label and series requests,
// while the process's heap is over
// -querier.query-protection.rejection.threshold.heap-utilization.
type guardedQueryable struct {
	storage.Queryable
	guard *queryprotection.Guard
}

// Querier returns the underlying querier, or a 503 error when the heap is
// too full to start one more query.
func (g *guardedQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	if err := g.guard.Admit(); err != nil {
		return nil, &unavailableError{err}
	}
	return g.Queryable.Querier(mint, maxt)
}

// LimitEngine gives engine the querier's subquery checks
// (-querier.max-subquery-steps, and -querier.max-samples counted over the
// subqueries' steps) for other evaluators of a tenant's PromQL, such as
// the ruler, which must not take more memory per query than the querier.
func LimitEngine(engine *promql.Engine, cfg Config) promql.QueryEngine {
	return &limitedEngine{
		engine:           engine,
		parser:           parser.NewParser(cfg.ParserOptions()),
		maxSubquerySteps: cfg.MaxSubquerySteps,
		maxSamples:       int64(cfg.MaxSamples),
		defaultStep:      cfg.DefaultEvaluationInterval.Milliseconds(),
	}
}
