package ruler

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/grafana/dskit/httpgrpc"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/stats"
	"google.golang.org/grpc"

	"github.com/cortex-tls/cortex/pkg/querier/codec"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/grpcclient"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
)

// FrontendClientTLSPrefix is the flag prefix of the ruler -> query-frontend
// gRPC link, Cortex's camel-case name: -ruler.frontendClient.tls-cert-path
// and the others.
const FrontendClientTLSPrefix = "ruler.frontendClient"

// FrontendConfig sends the ruler's queries to a query-frontend:
// Cortex's frontend_address and frontend_client.
type FrontendConfig struct {
	FrontendAddress string            `yaml:"frontend_address"`
	FrontendClient  grpcclient.Config `yaml:"frontend_client"`
	// QueryResponseFormat is the encoding the ruler asks the frontend's
	// answers in: json or protobuf.
	QueryResponseFormat string `yaml:"query_response_format"`
}

// RegisterFlags registers -ruler.frontend-address and the
// -ruler.frontendClient.* flags.
func (c *FrontendConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.FrontendAddress, "ruler.frontend-address", "", "GRPC listen address (host:port) of the query-frontend the rules' queries are sent to, instead of the ruler's own querier over the ingesters and store-gateways. The frontend answers them with its query API (limits, queueing, querier workers).")
	c.FrontendClient.RegisterFlagsWithPrefix(FrontendClientTLSPrefix, grpcclient.Defaults{}, f)
	f.StringVar(&c.QueryResponseFormat, "ruler.query-response-format", codec.FormatProtobuf, "[Experimental] Query response format to get query results from Query Frontend when the rule evaluation. It will only take effect when `-ruler.frontend-address` is configured. Supported values: json,protobuf. With protobuf (Cortex's encoding, application/x-cortex-query+proto) the answers are smaller and quicker to decode.")
}

// Validate checks the -ruler.frontendClient.* flags and that the address
// is a host:port.
func (c *FrontendConfig) Validate() error {
	if err := c.FrontendClient.Validate(FrontendClientTLSPrefix); err != nil {
		return err
	}
	if c.QueryResponseFormat != codec.FormatJSON && c.QueryResponseFormat != codec.FormatProtobuf {
		return fmt.Errorf("-ruler.query-response-format=%q (ruler.query_response_format): invalid query response format; use json or protobuf", c.QueryResponseFormat)
	}
	if c.FrontendAddress == "" {
		return nil
	}
	if host, port, err := net.SplitHostPort(c.FrontendAddress); err != nil || host == "" || port == "" {
		return fmt.Errorf("-ruler.frontend-address=%q: want the query-frontend's gRPC host:port", c.FrontendAddress)
	}
	return nil
}

// FrontendEngine evaluates the rules' queries on a query-frontend: each is
// sent as Prometheus' POST /api/v1/query over the frontend's gRPC server
// (dskit's httpgrpc.HTTP/Handle, as Cortex's ruler does), for the tenant of
// the query's context. It implements promql.QueryEngine for instant
// queries, the only ones rules run.
type FrontendEngine struct {
	addr   string
	path   string
	accept string
	conn   *grpc.ClientConn
	client httpgrpc.HTTPClient
}

// NewFrontendEngine dials the query-frontend at -ruler.frontend-address
// with the -ruler.frontendClient settings over tls (build it with
// tlsconfig.NewClient(FrontendClientTLSPrefix, cfg.FrontendClient.TLS, ...);
// nil is plaintext); queries go to prefix + "/api/v1/query" (the
// -http.prometheus-http-prefix), asking for -ruler.query-response-format.
// The connection is made at the first query.
func NewFrontendEngine(cfg FrontendConfig, prefix string, tls *tlsconfig.Client) (*FrontendEngine, error) {
	addr := cfg.FrontendAddress
	cc, err := grpc.NewClient(addr, append(cfg.FrontendClient.DialOptions(tls),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{})),
		grpc.WithChainUnaryInterceptor(tenantInterceptor),
	)...)
	if err != nil {
		return nil, fmt.Errorf("-ruler.frontend-address=%s: %w", addr, err)
	}
	// As Cortex's ruler asks: its protobuf encoding, JSON as a fallback.
	accept := codec.MIMEJSON
	if cfg.QueryResponseFormat == codec.FormatProtobuf {
		accept = codec.MIMECortexQuery + "," + codec.MIMEJSON
	}
	return &FrontendEngine{addr: addr, path: prefix + "/api/v1/query", accept: accept, conn: cc, client: httpgrpc.NewHTTPClient(cc)}, nil
}

var _ promql.QueryEngine = (*FrontendEngine)(nil)

// Close closes the connection.
func (e *FrontendEngine) Close() error { return e.conn.Close() }

// NewInstantQuery returns the query qs at ts, run on the frontend when
// executed; q is not used.
func (e *FrontendEngine) NewInstantQuery(_ context.Context, _ storage.Queryable, _ promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	return &frontendQuery{e: e, qs: qs, ts: ts}, nil
}

// NewRangeQuery is refused: rules only run instant queries.
func (e *FrontendEngine) NewRangeQuery(context.Context, storage.Queryable, promql.QueryOpts, string, time.Time, time.Time, time.Duration) (promql.Query, error) {
	return nil, errors.New("the ruler's query-frontend client runs instant queries only")
}

type frontendQuery struct {
	e      *FrontendEngine
	qs     string
	ts     time.Time
	cancel context.CancelFunc
}

func (q *frontendQuery) Exec(ctx context.Context) *promql.Result {
	ctx, q.cancel = context.WithCancel(ctx)
	defer q.cancel()
	v, err := q.e.query(ctx, q.qs, q.ts)
	return &promql.Result{Value: v, Err: err}
}

func (q *frontendQuery) Close() {}

func (q *frontendQuery) Statement() parser.Statement { return nil }

func (q *frontendQuery) Stats() *stats.Statistics { return nil }

func (q *frontendQuery) Cancel() {
	if q.cancel != nil {
		q.cancel()
	}
}

func (q *frontendQuery) String() string { return q.qs }

// query asks the frontend and decodes its answer: a vector or a scalar.
func (e *FrontendEngine) query(ctx context.Context, qs string, ts time.Time) (parser.Value, error) {
	id, err := tenant.ID(ctx)
	if err != nil {
		return nil, err
	}
	form := url.Values{"query": {qs}, "time": {strconv.FormatFloat(float64(ts.UnixMilli())/1000, 'f', -1, 64)}}
	body := []byte(form.Encode())
	resp, err := e.client.Handle(ctx, &httpgrpc.HTTPRequest{
		Method: http.MethodPost,
		Url:    e.path,
		Body:   body,
		Headers: []*httpgrpc.Header{
			{Key: "Content-Type", Values: []string{"application/x-www-form-urlencoded"}},
			{Key: "Content-Length", Values: []string{strconv.Itoa(len(body))}},
			{Key: "Accept", Values: []string{e.accept}},
			{Key: tenant.HeaderName, Values: []string{id}},
		},
	})
	if err != nil {
		if r, ok := httpgrpc.HTTPResponseFromError(err); ok {
			resp = r
		} else {
			return nil, fmt.Errorf("query-frontend %s (-ruler.frontend-address): %w", e.addr, err)
		}
	}
	if resp.Code == http.StatusOK && codec.IsProtobuf(contentType(resp)) {
		v, _, err := codec.DecodeInstant(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("query-frontend %s: %w", e.addr, err)
		}
		return v, nil
	}
	var out struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		return nil, fmt.Errorf("query-frontend %s answered %d with no Prometheus API response: %.200q", e.addr, resp.Code, resp.Body)
	}
	if resp.Code != http.StatusOK || out.Status != "success" {
		return nil, fmt.Errorf("query-frontend %s answered %d: %s: %s", e.addr, resp.Code, out.ErrorType, out.Error)
	}
	switch out.Data.ResultType {
	case "vector":
		var mv model.Vector
		if err := json.Unmarshal(out.Data.Result, &mv); err != nil {
			return nil, fmt.Errorf("query-frontend %s: decoding the vector: %w", e.addr, err)
		}
		v := make(promql.Vector, 0, len(mv))
		for _, s := range mv {
			if s.Histogram != nil {
				return nil, fmt.Errorf("query-frontend %s: the answer holds native histogram samples (%s), which its JSON cannot carry back exactly; ask in protobuf (-ruler.query-response-format=protobuf) or evaluate this rule without -ruler.frontend-address", e.addr, s.Metric)
			}
			b := labels.NewScratchBuilder(len(s.Metric))
			for name, value := range s.Metric {
				b.Add(string(name), string(value))
			}
			b.Sort()
			v = append(v, promql.Sample{Metric: b.Labels(), T: int64(s.Timestamp), F: float64(s.Value)})
		}
		return v, nil
	case "scalar":
		var ms model.Scalar
		if err := json.Unmarshal(out.Data.Result, &ms); err != nil {
			return nil, fmt.Errorf("query-frontend %s: decoding the scalar: %w", e.addr, err)
		}
		return promql.Scalar{T: int64(ms.Timestamp), V: float64(ms.Value)}, nil
	default:
		return nil, fmt.Errorf("query-frontend %s: rule queries must return a vector or a scalar, got %q", e.addr, out.Data.ResultType)
	}
}

// contentType is the Content-Type of an answer.
func contentType(resp *httpgrpc.HTTPResponse) string {
	for _, h := range resp.Headers {
		if http.CanonicalHeaderKey(h.Key) == "Content-Type" && len(h.Values) > 0 {
			return h.Values[0]
		}
	}
	return ""
}
