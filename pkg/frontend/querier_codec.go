package frontend

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/cortex-tls/cortex/pkg/frontend/frontendpb"
	"github.com/cortex-tls/cortex/pkg/querier/codec"
)

// querierCodec is how the frontend asks its queriers to encode the answers
// of queries and range queries, as Cortex's query codecs do: in
// -api.querier-default-codec (Accept), compressed with
// -querier.response-compression (Accept-Encoding). Answers come back to
// Prometheus' JSON, decompressed, before anything here reads them.
type querierCodec struct {
	accept, acceptEncoding string
	// maxAnswer bounds a decompressed answer as the frontend's gRPC server
	// (-server.grpc-max-recv-msg-size-bytes) bounds an uncompressed one.
	maxAnswer int64
}

// WithQuerierCodec sets -api.querier-default-codec (format: json or
// protobuf) and -querier.response-compression (gzip, snappy, zstd, none
// or empty) for the answers of the queriers, and the bound of a
// decompressed answer when the tenant has no -frontend.max-query-response-size
// (maxAnswer, the frontend's -server.grpc-max-recv-msg-size-bytes).
func WithQuerierCodec(format, compression string, maxAnswer int) Option {
	if maxAnswer <= 0 {
		maxAnswer = maxDownstreamResponse
	}
	return func(f *Frontend) {
		f.querierCodec = querierCodec{accept: codec.AcceptHeader(format), acceptEncoding: codec.AcceptEncoding(compression), maxAnswer: int64(maxAnswer)}
	}
}

// roundTripQuerier runs req once: a query or range query asks for the
// codec's encoding and compression, and its answer is decoded. A whole
// instant query that its client asks in the ruler's protobuf encoding
// (Accept: application/x-cortex-query+proto, which the shards of a
// sharded one do not carry) is asked so of the querier and its answer
// kept so: native histograms reach the ruler whole.
func (f *Frontend) roundTripQuerier(ctx context.Context, tenant string, req *frontendpb.HTTPRequest) (*frontendpb.HTTPResponse, error) {
	path := requestPath(req.Url)
	if f.downstream != nil || f.querierCodec.accept == "" || !isQueryPath(path) {
		return f.roundTripOnce(ctx, tenant, req)
	}
	asked := &frontendpb.HTTPRequest{Method: req.Method, Url: req.Url, Body: req.Body, Headers: make([]*frontendpb.Header, 0, len(req.Headers)+2)}
	accept := f.querierCodec.accept
	for _, h := range req.Headers {
		switch http.CanonicalHeaderKey(h.Key) {
		case "Accept":
			if strings.HasSuffix(path, "/api/v1/query") && len(h.Values) > 0 && codec.Negotiate(h.Values[0]) == codec.MIMECortexQuery {
				accept = codec.MIMECortexQuery + ", " + codec.MIMEJSON
			}
		case "Accept-Encoding":
		default:
			asked.Headers = append(asked.Headers, h)
		}
	}
	asked.Headers = append(asked.Headers, &frontendpb.Header{Key: "Accept", Values: []string{accept}})
	if f.querierCodec.acceptEncoding != "" {
		asked.Headers = append(asked.Headers, &frontendpb.Header{Key: "Accept-Encoding", Values: []string{f.querierCodec.acceptEncoding}})
	}
	resp, err := f.roundTripOnce(ctx, tenant, asked)
	if err != nil || resp == nil {
		return resp, err
	}
	return f.decodeAnswer(ctx, resp)
}

func requestPath(u string) string {
	p, _, _ := strings.Cut(u, "?")
	return p
}

// decodeAnswer decompresses a querier's answer, at most as large as the
// tenant's -frontend.max-query-response-size leaves (or the frontend's
// gRPC message bound), and turns a protobuf one into Prometheus' JSON,
// but for the ruler's encoding, which goes back as it came.
func (f *Frontend) decodeAnswer(ctx context.Context, resp *frontendpb.HTTPResponse) (*frontendpb.HTTPResponse, error) {
	h := frontendpb.FromHeaders(resp.Headers)
	encoding, contentType := h.Get("Content-Encoding"), h.Get("Content-Type")
	proto := codec.MediaType(contentType) == codec.MIMEProtobuf
	if encoding == "" && !proto {
		// The size the querier tells is for this frontend only.
		resp.Headers = slices.DeleteFunc(resp.Headers, func(h *frontendpb.Header) bool {
			return http.CanonicalHeaderKey(h.Key) == "X-Uncompressed-Length"
		})
		return resp, nil
	}
	limit := f.querierCodec.maxAnswer
	l, sized := ctx.Value(responseSizeKey{}).(*responseSizeLimiter)
	if sized {
		limit = min(limit, l.limit-l.total.Load())
	}
	hint, _ := strconv.ParseInt(h.Get("X-Uncompressed-Length"), 10, 64)
	body, err := codec.Decompress(resp.Body, encoding, max(limit, 0), hint)
	var tooLarge *codec.DecompressedTooLargeError
	switch {
	case errors.As(err, &tooLarge) && sized:
		return nil, errResponseTooLarge{limit: l.limit}
	case err != nil:
		return nil, err
	}
	h.Del("Content-Encoding")
	h.Del("X-Uncompressed-Length")
	if proto {
		if body, err = codec.ToJSON(make([]byte, 0, 2*len(body)), body); err != nil {
			return nil, err
		}
		h.Set("Content-Type", codec.MIMEJSON)
	}
	return &frontendpb.HTTPResponse{Code: resp.Code, Headers: frontendpb.ToHeaders(h), Body: body}, nil
}

// withClientEncoding answers an instant query in Cortex's protobuf
// encoding when the client asks for it first (Accept:
// application/x-cortex-query+proto, as Cortex's ruler asks with
// -ruler.query-response-format=protobuf); other answers, errors included,
// are Prometheus' JSON.
func withClientEncoding(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/api/v1/query") || codec.Negotiate(r.Header.Get("Accept")) != codec.MIMECortexQuery {
			next.ServeHTTP(w, r)
			return
		}
		rec := &bufferedWriter{ResponseWriter: w, header: http.Header{}}
		next.ServeHTTP(rec, r)
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		code := rec.code
		if code == 0 {
			code = http.StatusOK
		}
		body := rec.body.Bytes()
		if code == http.StatusOK && !codec.IsProtobuf(rec.header.Get("Content-Type")) {
			if enc, err := codec.FromJSON(nil, body); err == nil {
				body = enc
				w.Header().Set("Content-Type", codec.MIMECortexQuery)
			}
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(code)
		_, _ = w.Write(body)
	})
}

// bufferedWriter holds an answer until it is complete.
type bufferedWriter struct {
	http.ResponseWriter
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.header }

func (b *bufferedWriter) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}

// Unwrap gives http.ResponseController the client's writer (write
// deadlines).
func (b *bufferedWriter) Unwrap() http.ResponseWriter { return b.ResponseWriter }
