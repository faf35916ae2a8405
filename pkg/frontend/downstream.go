package frontend

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// maxDownstreamResponse bounds the answer read from -frontend.downstream-url,
// as -server.grpc-max-recv-msg-size-bytes' default (100 MiB) bounds a
// querier's answer to the frontend.
const maxDownstreamResponse = 100 << 20

// downstream sends the frontend's queries, split and cached as any, to a
// Prometheus-compatible API (-frontend.downstream-url) instead of queueing
// them for queriers, as Cortex's downstream round tripper does.
//
// Two choices differ from Cortex, which forwards the client's request as it
// came over http.DefaultTransport:
//   - the request carries what a querier would get: the tenant's
//     X-Scope-OrgID and the headers left once hop-by-hop headers and the
//     client's credentials (Authorization, Proxy-Authorization, Cookie) are
//     dropped. The downstream sees this frontend, not the client: a
//     credential meant for the frontend must not reach another server.
//   - over https, the link uses the frontend's own client TLS settings,
//     -frontend.grpc-client-config.tls-* (its link to the query-schedulers):
//     the downstream stands where the queriers would, inside the cluster, so
//     it is checked against the cluster's CA and sees the frontend's client
//     certificate, reloaded like every link's. Without those flags an https
//     URL is checked against the system's roots.
type downstream struct {
	url    *url.URL
	client *http.Client
}

// WithDownstream gives the TLS settings of the -frontend.downstream-url
// link (nil: none set).
func WithDownstream(tls *tlsconfig.Client) Option {
	return func(f *Frontend) { f.downstreamTLS = tls }
}

// parseDownstreamURL checks -frontend.downstream-url.
func parseDownstreamURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("-frontend.downstream-url %q: %w", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-frontend.downstream-url %q: want http:// or https://host[:port][/path]", s)
	}
	if u.User != nil {
		return nil, fmt.Errorf("-frontend.downstream-url: credentials in the URL are not accepted: the link authenticates with -frontend.grpc-client-config.tls-* client certificates")
	}
	return u, nil
}

func newDownstream(u *url.URL, tls *tlsconfig.Client) *downstream {
	return &downstream{url: u, client: &http.Client{
		Transport: tls.HTTPTransport(),
		// A redirect would send the tenant's query elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// roundTrip sends req to the downstream URL, its path under the URL's.
func (d *downstream) roundTrip(ctx context.Context, req *frontendpb.HTTPRequest) (*frontendpb.HTTPResponse, error) {
	ru, err := url.ParseRequestURI(req.Url)
	if err != nil {
		return nil, fmt.Errorf("query URL %q: %w", req.Url, err)
	}
	u := *d.url
	u.Path = path.Join(d.url.Path, ru.Path)
	u.RawPath = ""
	u.RawQuery = ru.RawQuery
	r, err := http.NewRequestWithContext(ctx, req.Method, u.String(), bytes.NewReader(req.Body))
	if err != nil {
		return nil, err
	}
	r.Header = frontendpb.FromHeaders(req.Headers)
	for _, h := range hopHeaders {
		r.Header.Del(h)
	}
	resp, err := d.client.Do(r)
	if err != nil {
		return nil, fmt.Errorf("-frontend.downstream-url: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDownstreamResponse+1))
	if err != nil {
		return nil, fmt.Errorf("-frontend.downstream-url: reading the answer: %w", err)
	}
	if len(body) > maxDownstreamResponse {
		return nil, fmt.Errorf("-frontend.downstream-url: the answer is larger than %d bytes", maxDownstreamResponse)
	}
	header := resp.Header.Clone()
	for _, h := range []string{"Content-Length", "Content-Encoding", "Connection", "Transfer-Encoding", "Set-Cookie"} {
		header.Del(h)
	}
	return &frontendpb.HTTPResponse{Code: int32(resp.StatusCode), Headers: frontendpb.ToHeaders(header), Body: body}, nil
}
