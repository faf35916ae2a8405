package schedulerpb

import "github.com/cortex-tls/cortex/pkg/frontend/frontendpb"

// FromFrontendRequest copies a query-frontend request; bodies are shared.
func FromFrontendRequest(r *frontendpb.HTTPRequest) *HTTPRequest {
	if r == nil {
		return nil
	}
	hs := make([]*Header, len(r.Headers))
	for i, h := range r.Headers {
		hs[i] = &Header{Key: h.Key, Values: h.Values}
	}
	return &HTTPRequest{Method: r.Method, Url: r.Url, Headers: hs, Body: r.Body}
}

// ToFrontendRequest copies a request back to the query-frontend's type.
func ToFrontendRequest(r *HTTPRequest) *frontendpb.HTTPRequest {
	if r == nil {
		return nil
	}
	hs := make([]*frontendpb.Header, len(r.Headers))
	for i, h := range r.Headers {
		hs[i] = &frontendpb.Header{Key: h.Key, Values: h.Values}
	}
	return &frontendpb.HTTPRequest{Method: r.Method, Url: r.Url, Headers: hs, Body: r.Body}
}

// FromFrontendResponse copies a query-frontend response; bodies are shared.
func FromFrontendResponse(r *frontendpb.HTTPResponse) *HTTPResponse {
	if r == nil {
		return nil
	}
	hs := make([]*Header, len(r.Headers))
	for i, h := range r.Headers {
		hs[i] = &Header{Key: h.Key, Values: h.Values}
	}
	return &HTTPResponse{Code: r.Code, Headers: hs, Body: r.Body}
}

// ToFrontendResponse copies a response back to the query-frontend's type.
func ToFrontendResponse(r *HTTPResponse) *frontendpb.HTTPResponse {
	if r == nil {
		return nil
	}
	hs := make([]*frontendpb.Header, len(r.Headers))
	for i, h := range r.Headers {
		hs[i] = &frontendpb.Header{Key: h.Key, Values: h.Values}
	}
	return &frontendpb.HTTPResponse{Code: r.Code, Headers: hs, Body: r.Body}
}
