package api

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/cortex-tls/cortex/pkg/auth"
)

// csrfPlaceholder is what dskit's ring status page puts in its "Forget"
// form for the server to replace with a CSRF token.
const csrfPlaceholder = "$__CSRF_TOKEN_PLACEHOLDER__"

// csrfField is the form field dskit's ring page sends the token in.
const csrfField = "csrf_token"

// csrf issues and checks the tokens of the forms that change a ring: the
// token is an HMAC, under a secret drawn at process start, of the page's
// path and the client certificate's identity. Another site cannot read
// it, another client certificate cannot reuse it, and a restart voids it.
type csrf struct {
	secret []byte
}

func newCSRF() *csrf {
	secret := make([]byte, 32)
	// crypto/rand.Read never fails (it crashes the program instead).
	_, _ = rand.Read(secret)
	return &csrf{secret: secret}
}

// token is the form token of r's page for r's client.
func (c *csrf) token(r *http.Request) string {
	mac := hmac.New(sha256.New, c.secret)
	mac.Write([]byte(r.URL.Path))
	mac.Write([]byte{0})
	mac.Write([]byte(auth.PeerIdentity(r.TLS)))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// protect serves next with its forms' token placeholder replaced by the
// token, and refuses a POST whose form does not carry that token.
func (c *csrf) protect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil {
				http.Error(w, "reading the form: "+err.Error(), http.StatusBadRequest)
				return
			}
			if !hmac.Equal([]byte(r.PostForm.Get(csrfField)), []byte(c.token(r))) {
				http.Error(w, "forbidden: the form's "+csrfField+" is missing or not one this process gave this page and client certificate; reload the page and submit again", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		buf := &bufferedResponse{header: http.Header{}, code: http.StatusOK}
		next.ServeHTTP(buf, r)
		body := bytes.ReplaceAll(buf.body.Bytes(), []byte(csrfPlaceholder), []byte(c.token(r)))
		for k, v := range buf.header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(buf.code)
		_, _ = w.Write(body)
	})
}

// bufferedResponse holds a handler's answer so that it can be changed
// before it is sent.
type bufferedResponse struct {
	header      http.Header
	code        int
	wroteHeader bool
	body        bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if !b.wroteHeader {
		b.code, b.wroteHeader = code, true
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.wroteHeader = true
	return b.body.Write(p)
}
