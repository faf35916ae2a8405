package cortex

import (
	"github.com/prometheus/prometheus/promql"

	"github.com/cortex-tls/cortex/pkg/querier"
	"github.com/cortex-tls/cortex/pkg/ruler"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// rulerQueryEngine is what the rules' queries run on: engine over the
// ruler's queryable, with the querier's subquery checks (a rule must not
// take more memory than the same query sent to the querier), or with
// -ruler.frontend-address the query-frontend,
// asked over gRPC with the -ruler.frontendClient TLS link under the
// -http.prometheus-http-prefix path, as Cortex's ruler does.
func (t *Cortex) rulerQueryEngine(engine *promql.Engine) (promql.QueryEngine, error) {
	cfg := t.Cfg.Ruler.Frontend
	if cfg.FrontendAddress == "" {
		return querier.LimitEngine(engine, t.Cfg.Querier), nil
	}
	tls, err := tlsconfig.NewClient(ruler.FrontendClientTLSPrefix, cfg.FrontendClient.TLS, t.TLS)
	if err != nil {
		return nil, err
	}
	fe, err := ruler.NewFrontendEngine(cfg, t.Cfg.Querier.PrometheusHTTPPrefix, tls)
	if err != nil {
		return nil, err
	}
	t.closers = append(t.closers, fe)
	return fe, nil
}
