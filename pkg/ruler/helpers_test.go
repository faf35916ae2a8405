package ruler

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/annotations"
	"go.yaml.in/yaml/v3"

	"github.com/cortex-tls/cortex/pkg/certgen"
	"github.com/cortex-tls/cortex/pkg/ruler/rulestore"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
)

// memStore is a rule store in memory.
type memStore struct {
	mu     sync.Mutex
	groups []rulestore.RuleGroup
}

func (s *memStore) set(groups ...rulestore.RuleGroup) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups = groups
}

func (s *memStore) ListAllUsers(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var users []string
	for _, g := range s.groups {
		if !slices.Contains(users, g.User) {
			users = append(users, g.User)
		}
	}
	slices.Sort(users)
	return users, nil
}

func (s *memStore) ListRuleGroups(_ context.Context, user, namespace string) ([]rulestore.RuleGroup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []rulestore.RuleGroup
	for _, g := range s.groups {
		if g.User == user && (namespace == "" || g.Namespace == namespace) {
			out = append(out, g)
		}
	}
	return out, nil
}

func (s *memStore) GetRuleGroup(context.Context, string, string, string) (rulestore.RuleGroup, error) {
	return rulestore.RuleGroup{}, rulestore.ErrGroupNotFound
}
func (s *memStore) SetRuleGroup(context.Context, rulestore.RuleGroup) error {
	return rulestore.ErrReadOnly
}
func (s *memStore) DeleteRuleGroup(context.Context, string, string, string) error {
	return rulestore.ErrReadOnly
}
func (s *memStore) DeleteNamespace(context.Context, string, string) error {
	return rulestore.ErrReadOnly
}

// group parses a rule group from YAML.
func group(t testing.TB, user, namespace, text string) rulestore.RuleGroup {
	t.Helper()
	var g rulefmt.RuleGroup
	if err := yaml.Unmarshal([]byte(text), &g); err != nil {
		t.Fatalf("rule group YAML: %v", err)
	}
	return rulestore.RuleGroup{User: user, Namespace: namespace, Group: g}
}

// tenantDBs is each tenant's storage: the queryable the rules read (by
// the tenant of the query's context) and the pusher they write through.
type tenantDBs struct {
	t   testing.TB
	dir string
	mu  sync.Mutex
	dbs map[string]*tsdb.DB
	// pushes counts the write requests per tenant.
	pushes map[string]int
}

func newTenantDBs(t testing.TB) *tenantDBs {
	// The directory is made now, before the ruler under test starts, so
	// that its removal comes after the ruler's stop (cleanups run last
	// first) rather than under a running evaluation.
	return &tenantDBs{t: t, dir: t.TempDir(), dbs: map[string]*tsdb.DB{}, pushes: map[string]int{}}
}

func (d *tenantDBs) db(user string) *tsdb.DB {
	d.mu.Lock()
	defer d.mu.Unlock()
	if db, ok := d.dbs[user]; ok {
		return db
	}
	db, err := tsdb.Open(filepath.Join(d.dir, user), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { _ = db.Close() })
	d.dbs[user] = db
	return db
}

// add writes one float sample per series at ts.
func (d *tenantDBs) add(user string, ts time.Time, v float64, series ...labels.Labels) {
	app := d.db(user).AppenderV2(context.Background())
	for _, s := range series {
		if _, err := app.Append(0, s, 0, ts.UnixMilli(), v, nil, nil, storage.AOptions{}); err != nil {
			d.t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		d.t.Fatal(err)
	}
}

func (d *tenantDBs) Push(ctx context.Context, req *prompb.WriteRequest) error {
	user, err := tenant.ID(ctx)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.pushes[user]++
	d.mu.Unlock()
	app := d.db(user).AppenderV2(ctx)
	var b labels.ScratchBuilder
	for _, ts := range req.Timeseries {
		ls := ts.ToLabels(&b, nil)
		for _, s := range ts.Samples {
			if _, err := app.Append(0, ls, 0, s.Timestamp, s.Value, nil, nil, storage.AOptions{}); err != nil && !errors.Is(err, storage.ErrDuplicateSampleForTimestamp) && !errors.Is(err, storage.ErrOutOfOrderSample) {
				_ = app.Rollback()
				return err
			}
		}
	}
	return app.Commit()
}

func (d *tenantDBs) pushCount(user string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pushes[user]
}

func (d *tenantDBs) Querier(mint, maxt int64) (storage.Querier, error) {
	return &tenantQuerier{d: d, mint: mint, maxt: maxt}, nil
}

type tenantQuerier struct {
	d          *tenantDBs
	mint, maxt int64
	mu         sync.Mutex
	open       []storage.Querier
}

func (q *tenantQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	user, err := tenant.ID(ctx)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	inner, err := q.d.db(user).Querier(q.mint, q.maxt)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	q.mu.Lock()
	q.open = append(q.open, inner)
	q.mu.Unlock()
	return inner.Select(ctx, sortSeries, hints, ms...)
}

func (q *tenantQuerier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (q *tenantQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (q *tenantQuerier) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var errs []error
	for _, o := range q.open {
		errs = append(errs, o.Close())
	}
	return errors.Join(errs...)
}

// instant runs an instant query over the tenant's storage.
func (d *tenantDBs) instant(t testing.TB, user, q string) promql.Vector {
	t.Helper()
	e := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute})
	ctx := tenant.Inject(context.Background(), user)
	qry, err := e.NewInstantQuery(ctx, d, nil, q, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	v, _ := res.Vector()
	return v
}

// syncBuffer is a log sink tests read while the ruler writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testRuler starts a ruler evaluating every 100ms, polling the store every
// 50ms, and stops it at the end of the test.
func testRuler(t *testing.T, cfg Config, store rulestore.Store, dbs *tenantDBs, amTLS *tlsconfig.Client, logs io.Writer, reg prometheus.Registerer) *Ruler {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	engine := NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute}, reg)
	r, err := New(cfg, store, dbs, dbs, engine, amTLS, slog.New(slog.NewTextHandler(logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.StartAsync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.AwaitRunning(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.StopAsync()
		_ = r.AwaitTerminated(context.Background())
	})
	return r
}

// testConfig is the default configuration with short intervals.
func testConfig(t testing.TB, args ...string) Config {
	t.Helper()
	var cfg Config
	fs := newFlagSet()
	cfg.RegisterFlags(fs)
	if err := fs.Parse(append([]string{"-ruler.evaluation-interval=100ms", "-ruler.poll-interval=50ms", "-ruler.resend-delay=100ms"}, args...)); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// eventually polls cond every 20ms until it holds or 15s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tlsFiles writes a CA and a server certificate for 127.0.0.1 issued by it.
type tlsFiles struct {
	caPath string
	server *certgen.Pair
}

func newTLSFiles(t testing.TB) tlsFiles {
	t.Helper()
	ca, err := certgen.NewCA(certgen.Options{CommonName: "test CA"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Issue(certgen.Options{CommonName: "alertmanager", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return tlsFiles{caPath: path, server: srv}
}

// received is one request an Alertmanager test server got.
type received struct {
	path, tenant, body string
	// auth is the basic authentication, user:password.
	auth string
}

// alertmanagerServer is an HTTPS Alertmanager API that records what it
// receives.
type alertmanagerServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []received
}

func newAlertmanagerServer(t testing.TB, cert *certgen.Pair) *alertmanagerServer {
	t.Helper()
	am := &alertmanagerServer{}
	am.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		am.mu.Lock()
		user, password, _ := r.BasicAuth()
		am.reqs = append(am.reqs, received{path: r.URL.Path, tenant: r.Header.Get(tenant.HeaderName), body: string(body), auth: user + ":" + password})
		am.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	// A refused handshake is what some tests are about: keep it out of the output.
	am.Config.ErrorLog = log.New(io.Discard, "", 0)
	am.TLS = newServerTLS(cert)
	am.StartTLS()
	t.Cleanup(am.Close)
	return am
}

func (am *alertmanagerServer) received() []received {
	am.mu.Lock()
	defer am.mu.Unlock()
	return slices.Clone(am.reqs)
}

// counter returns the value of one series of a gathered counter, or -1.
func counter(t testing.TB, reg *prometheus.Registry, name string, lbls map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range lbls {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func newFlagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }

func newServerTLS(cert *certgen.Pair) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert.TLSCertificate()}, MinVersion: tls.VersionTLS12}
}
