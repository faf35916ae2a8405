package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// remoteReadClient is Prometheus's own remote read client, configured as a
// Prometheus remote_read section with tls_config would configure it: the
// leaf's client certificate, the test CA, the tenant in X-Scope-OrgID.
func remoteReadClient(t *testing.T, p *testkit.Cortex, certs, leaf, tenantID string, rt prompb.ReadRequest_ResponseType) remote.ReadClient {
	t.Helper()
	u, err := url.Parse("https://" + p.HTTPAddr + "/prometheus/api/v1/read")
	if err != nil {
		t.Fatal(err)
	}
	httpCfg := config_util.DefaultHTTPClientConfig
	httpCfg.TLSConfig = config_util.TLSConfig{
		CAFile:   filepath.Join(certs, "root.crt"),
		CertFile: filepath.Join(certs, leaf+".crt"),
		KeyFile:  filepath.Join(certs, leaf+".key"),
	}
	c, err := remote.NewReadClient("cortex", &remote.ClientConfig{
		URL:                   &config_util.URL{URL: u},
		Timeout:               model.Duration(20 * time.Second),
		HTTPClientConfig:      httpCfg,
		Headers:               map[string]string{"X-Scope-OrgID": tenantID},
		ChunkedReadLimit:      50 << 20,
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{rt},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// readSeries lists each series with its samples, relative to t0.
func readSeries(ss storage.SeriesSet, t0 int64) (string, error) {
	var b strings.Builder
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		b.WriteString(s.Labels().String())
		it = s.Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			fmt.Fprintf(&b, " %d=%g", ts-t0, v)
		}
		if err := it.Err(); err != nil {
			return "", err
		}
		b.WriteString("\n")
	}
	return b.String(), ss.Err()
}

// TestRemoteReadAndExemplars: with mutual TLS on every link and client
// certificates bound to tenants, series and an exemplar pushed by remote
// write are read back by Prometheus's remote read client in both response
// types (SAMPLES and STREAMED_XOR_CHUNKS), and the exemplar through the
// query-frontend's /prometheus/api/v1/query_exemplars; another tenant
// reads none of it, and a certificate bound to another tenant gets 403.
func TestRemoteReadAndExemplars(t *testing.T) {
	t.Parallel()
	p := testkit.NewPKI(t, "root")
	p.Issue(t, "server", certgen.Options{CommonName: "localhost", DNSNames: []string{"server", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Issue(t, "client", certgen.Options{DNSNames: []string{"client", "localhost"}, IPs: testkit.LoopbackIPs()})
	p.Issue(t, "team-b", certgen.Options{DNSNames: []string{"localhost"}})
	certs := p.Dir
	allow := filepath.Join(t.TempDir(), "client-tenants.yaml")
	if err := os.WriteFile(allow, []byte("clients:\n  client: ['*']\n  team-b: [team-b]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// -target=all: the query-frontend serves the Prometheus API and
	// passes queries to the querier through its queue. The older flag
	// name of the exemplar limit keeps working.
	proc, c := startBlocksProcess(t, certs,
		"-auth.client-tenants-file="+allow,
		"-blocks-storage.tsdb.max-exemplars=500",
		"-blocks-storage.filesystem.dir="+t.TempDir(),
		"-blocks-storage.bucket-store.sync-dir="+t.TempDir(),
		"-compactor.data-dir="+t.TempDir(),
	)

	t0 := time.Now().Add(-time.Minute).Truncate(time.Second).UnixMilli()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{
			Labels:    []prompb.Label{{Name: "__name__", Value: "requests_total"}, {Name: "job", Value: "api"}},
			Samples:   []prompb.Sample{{Timestamp: t0, Value: 1}, {Timestamp: t0 + 15000, Value: 2}, {Timestamp: t0 + 30000, Value: 4}},
			Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "4bf92f3577b34da6"}}, Value: 4, Timestamp: t0 + 30000}},
		},
		{
			Labels:  []prompb.Label{{Name: "__name__", Value: "requests_total"}, {Name: "job", Value: "web"}},
			Samples: []prompb.Sample{{Timestamp: t0, Value: 10}, {Timestamp: t0 + 15000, Value: 20}},
		},
	}}
	if code, body := c.push("team-a", req); code != http.StatusNoContent {
		t.Fatalf("push: %d %s", code, body)
	}

	query := &prompb.Query{
		StartTimestampMs: t0,
		EndTimestampMs:   t0 + 60000,
		Matchers:         []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "requests_total"}},
	}
	const want = `{__name__="requests_total", job="api"} 0=1 15000=2 30000=4` + "\n" +
		`{__name__="requests_total", job="web"} 0=10 15000=20` + "\n"
	for _, rt := range []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS} {
		ss, err := remoteReadClient(t, proc, certs, "client", "team-a", rt).Read(context.Background(), query, true)
		if err != nil {
			t.Fatalf("%s: %v", rt, err)
		}
		got, err := readSeries(ss, t0)
		if err != nil || got != want {
			t.Fatalf("%s: read back\n%s(%v), want\n%s", rt, got, err, want)
		}
		ss, err = remoteReadClient(t, proc, certs, "client", "team-c", rt).Read(context.Background(), query, true)
		if err != nil {
			t.Fatalf("%s as team-c: %v", rt, err)
		}
		if got, err := readSeries(ss, t0); err != nil || got != "" {
			t.Fatalf("%s: team-c read %q (%v), want nothing", rt, got, err)
		}
		// team-b's certificate may act for team-b only.
		_, err = remoteReadClient(t, proc, certs, "team-b", "team-a", rt).Read(context.Background(), query, true)
		if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), `client "team-b" may not act for tenant "team-a"`) {
			t.Fatalf("%s: team-b's certificate reading team-a: %v, want 403", rt, err)
		}
		// A query of several tenants needs every one of them.
		_, err = remoteReadClient(t, proc, certs, "team-b", "team-b|team-a", rt).Read(context.Background(), query, true)
		if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), `client "team-b" may not act for tenant "team-a"`) {
			t.Fatalf("%s: team-b's certificate reading team-b|team-a: %v, want 403", rt, err)
		}
		ss, err = remoteReadClient(t, proc, certs, "team-b", "team-b", rt).Read(context.Background(), query, true)
		if err != nil {
			t.Fatalf("%s: team-b reading its own tenant: %v", rt, err)
		}
		if got, err := readSeries(ss, t0); err != nil || got != "" {
			t.Fatalf("%s: team-b read %q (%v), want nothing", rt, got, err)
		}
	}

	// The exemplar, through the query-frontend.
	exemplars := func(client *http.Client, tenantID string) (int, string) {
		params := url.Values{
			"query": {`requests_total{job=~"api|web"}`},
			"start": {fmt.Sprint(t0 / 1000)},
			"end":   {fmt.Sprint(t0/1000 + 60)},
		}
		return do(t, client, http.MethodGet, "https://"+proc.HTTPAddr+"/prometheus/api/v1/query_exemplars?"+params.Encode(), tenantID, nil)
	}
	code, body := exemplars(c.client, "team-a")
	var res struct {
		Status string `json:"status"`
		Data   []struct {
			SeriesLabels map[string]string `json:"seriesLabels"`
			Exemplars    []struct {
				Labels    map[string]string `json:"labels"`
				Value     string            `json:"value"`
				Timestamp float64           `json:"timestamp"`
			} `json:"exemplars"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &res); code != http.StatusOK || err != nil {
		t.Fatalf("query_exemplars: %d %s (%v)", code, body, err)
	}
	if len(res.Data) != 1 || res.Data[0].SeriesLabels["job"] != "api" || len(res.Data[0].Exemplars) != 1 {
		t.Fatalf("query_exemplars: %s, want the one exemplar of job api", body)
	}
	e := res.Data[0].Exemplars[0]
	if e.Labels["trace_id"] != "4bf92f3577b34da6" || e.Value != "4" || int64(e.Timestamp*1000) != t0+30000 {
		t.Fatalf("exemplar %+v, want trace 4bf92f3577b34da6, value 4 at %d", e, t0+30000)
	}
	if code, body := exemplars(c.client, "team-c"); code != http.StatusOK || body != `{"status":"success","data":[]}` {
		t.Fatalf("team-c's exemplars: %d %s, want none", code, body)
	}
	teamB := httpClient(tlsClient(t, clientConfig(certs, "team-b")))
	if code, body := exemplars(teamB, "team-a"); code != http.StatusForbidden {
		t.Fatalf("team-b's certificate reading team-a's exemplars: %d %s, want 403", code, body)
	}
	if code, body := exemplars(teamB, "team-b|team-a"); code != http.StatusForbidden || !strings.Contains(body, `client "team-b" may not act for tenant "team-a"`) {
		t.Fatalf("team-b's certificate reading team-b|team-a's exemplars: %d %s, want 403", code, body)
	}
}
