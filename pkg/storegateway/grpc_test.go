package storegateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ingclient "github.com/cortex-tls/cortex/pkg/ingester/client"
	"github.com/cortex-tls/cortex/pkg/storegateway"
	sgclient "github.com/cortex-tls/cortex/pkg/storegateway/client"
	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/tlsconfig"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

const (
	step       = int64(15_000)
	numSamples = 300 // several 120-sample chunks per series
	bigSeries  = 300 // more than two messages of 128 series
)

// gateway is a store-gateway gRPC server with mutual TLS on loopback.
type gateway struct {
	addr   string
	pki    *testkit.PKI
	loader *tlsconfig.Loader
}

func startGateway(t testing.TB, store *storegateway.BucketStore) *gateway {
	t.Helper()
	pki := testkit.NewPKI(t, "cluster-ca")
	srvLeaf := pki.Server(t, "store-gateway")
	loader := tlsconfig.NewLoader((&testkit.Buffer{}).Logger(), nil)
	tlsSrv, err := tlsconfig.NewServer("grpc", "server.grpc", tlsconfig.ServerConfig{
		CertPath: srvLeaf.CertPath, KeyPath: srvLeaf.KeyPath, CAPath: pki.CAPath, ClientAuth: "RequireAndVerifyClientCert",
	}, tlsconfig.ServerOptions{}, loader)
	if err != nil {
		t.Fatal(err)
	}
	opts := append([]grpc.ServerOption{grpc.Creds(tlsSrv.GRPCCredentials()), grpc.ForceServerCodecV2(grpccodec.Codec{})}, tenant.ServerInterceptors()...)
	gs := grpc.NewServer(opts...)
	storegateway.RegisterStoreGatewayServer(gs, storegateway.NewStoreGatewayServer(store, nil))
	hs := health.NewServer()
	hs.SetServingStatus(storegateway.ServiceName, grpc_health_v1.HealthCheckResponse_SERVING)
	grpc_health_v1.RegisterHealthServer(gs, hs)
	ln := testkit.Listen(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(ln)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	return &gateway{addr: ln.Addr().String(), pki: pki, loader: loader}
}

// dial connects with the client certificate and CA bundle given, through
// the link's flags.
func (g *gateway) dial(t testing.TB, leaf *testkit.Leaf, caPath string) *sgclient.Conn {
	t.Helper()
	var cfg sgclient.Config
	cfg.TLS.CertPath, cfg.TLS.KeyPath, cfg.TLS.CAPath = leaf.CertPath, leaf.KeyPath, caPath
	tlsClient, err := tlsconfig.NewClient(sgclient.TLSPrefix, cfg.TLS, g.loader)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := sgclient.Dial(g.addr, cfg, tlsClient)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

type sample struct {
	T int64
	V float64
}

func value(i int) func(int64) float64 {
	return func(ts int64) float64 { return float64(i*1_000_000) + float64(ts/step) }
}

// seriesResult reads a Series stream: each series' labels and decoded
// samples, in the order sent, and the number of messages.
func seriesResult(t *testing.T, conn *sgclient.Conn, tenantID string, q *prompb.Query) (names []string, samples map[string][]sample, messages int) {
	t.Helper()
	names, samples, sizes := seriesBatches(t, conn, tenant.Inject(context.Background(), tenantID), q)
	return names, samples, len(sizes)
}

// seriesBatches is seriesResult with the call's context given, returning
// how many series each message carried.
func seriesBatches(t *testing.T, conn *sgclient.Conn, ctx context.Context, q *prompb.Query) (names []string, samples map[string][]sample, sizes []int) {
	t.Helper()
	stream, err := conn.Series(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	samples = map[string][]sample{}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return names, samples, sizes
		}
		if err != nil {
			t.Fatalf("series: %v", err)
		}
		sizes = append(sizes, len(msg.ChunkedSeries))
		for _, cs := range msg.ChunkedSeries {
			name := labelsString(cs.Labels)
			names = append(names, name)
			for _, c := range cs.Chunks {
				if c.Type != prompb.Chunk_XOR {
					t.Fatalf("series %s: chunk encoding %s, want XOR", name, c.Type)
				}
				chk, err := chunkenc.FromData(chunkenc.EncXOR, c.Data)
				if err != nil {
					t.Fatalf("series %s: %v", name, err)
				}
				it := chk.Iterator(nil)
				for it.Next() != chunkenc.ValNone {
					ts, v := it.At()
					if ts < c.MinTimeMs || ts > c.MaxTimeMs {
						t.Fatalf("series %s: sample at %d outside its chunk's [%d, %d]", name, ts, c.MinTimeMs, c.MaxTimeMs)
					}
					samples[name] = append(samples[name], sample{ts, v})
				}
				if err := it.Err(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

func labelsString(ls []prompb.Label) string {
	b := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	return b.Labels().String()
}

func expected(i int, mint, maxt int64) []sample {
	var out []sample
	for j := range numSamples {
		ts := int64(j) * step
		if ts >= mint && ts <= maxt {
			out = append(out, sample{ts, value(i)(ts)})
		}
	}
	return out
}

func eq(name, value string) *prompb.LabelMatcher {
	return &prompb.LabelMatcher{Type: prompb.LabelMatcher_EQ, Name: name, Value: value}
}

// TestStoreGatewayGRPC writes blocks, uploads them to a filesystem bucket,
// syncs a bucket store and queries it over gRPC with mutual TLS.
func TestStoreGatewayGRPC(t *testing.T) {
	bkt := storegateway.NewTestBucket(t)
	var small, big []storage.Series
	for i := range 3 {
		small = append(small, storegateway.FloatSeries(labels.FromStrings("__name__", "cpu", "pod", fmt.Sprintf("p%d", i)), 0, step, numSamples, value(i)))
	}
	for i := range bigSeries {
		big = append(big, storegateway.FloatSeries(labels.FromStrings("__name__", "requests_total", "pod", fmt.Sprintf("p%03d", i)), 0, step, numSamples, value(i)))
	}
	// The same cpu series uploaded twice, as by two ingesters of a
	// replication set: each sample must come back once.
	storegateway.UploadBlock(t, bkt, "team-a", storegateway.WriteBlock(t, small))
	storegateway.UploadBlock(t, bkt, "team-a", storegateway.WriteBlock(t, small))
	storegateway.UploadBlock(t, bkt, "team-a", storegateway.WriteBlock(t, big))
	storegateway.UploadBlock(t, bkt, "team-b", storegateway.WriteBlock(t, []storage.Series{
		storegateway.FloatSeries(labels.FromStrings("__name__", "mem", "zone", "b"), 0, step, 10, value(0)),
	}))
	store := storegateway.NewTestStore(t, bkt)
	if err := store.SyncBlocks(context.Background()); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, store)
	conn := g.dial(t, g.pki.Client(t, "querier"), g.pki.CAPath)
	ctx := tenant.Inject(context.Background(), "team-a")

	t.Run("health of the service", func(t *testing.T) {
		resp, err := conn.Check(context.Background(), &grpc_health_v1.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != grpc_health_v1.HealthCheckResponse_SERVING {
			t.Errorf("health of %s: %s", storegateway.ServiceName, resp.Status)
		}
	})

	t.Run("series: exactly the written samples", func(t *testing.T) {
		names, got, _ := seriesResult(t, conn, "team-a", &prompb.Query{Matchers: []*prompb.LabelMatcher{eq("__name__", "cpu")}})
		want := []string{`{__name__="cpu", pod="p0"}`, `{__name__="cpu", pod="p1"}`, `{__name__="cpu", pod="p2"}`}
		if !slices.Equal(names, want) {
			t.Fatalf("series %v, want %v", names, want)
		}
		for i, name := range want {
			if w := expected(i, 0, 1<<62); !slices.Equal(got[name], w) {
				t.Errorf("%s: %d samples, want %d: got %v", name, len(got[name]), len(w), got[name])
			}
		}
	})

	t.Run("series: whole chunks overlapping the range", func(t *testing.T) {
		mint, maxt := 100*step, 130*step
		q := &prompb.Query{StartTimestampMs: mint, EndTimestampMs: maxt, Matchers: []*prompb.LabelMatcher{eq("__name__", "cpu"), eq("pod", "p1")}}
		names, got, _ := seriesResult(t, conn, "team-a", q)
		if len(names) != 1 {
			t.Fatalf("series %v, want one", names)
		}
		var in []sample
		for _, s := range got[names[0]] {
			if s.T >= mint && s.T <= maxt {
				in = append(in, s)
			}
		}
		if w := expected(1, mint, maxt); !slices.Equal(in, w) {
			t.Errorf("samples in the range %v, want %v", in, w)
		}
		// The chunks overlapping [100, 130] steps, with 120-sample chunks,
		// are the first two: the third starts after the range.
		if all := got[names[0]]; len(all) >= numSamples || all[len(all)-1].T > 240*step {
			t.Errorf("%d samples up to %d: chunks past the range were sent", len(all), all[len(all)-1].T)
		}
	})

	t.Run("series: one series per message unless the call asks for more", func(t *testing.T) {
		names, got, messages := seriesResult(t, conn, "team-a", &prompb.Query{Matchers: []*prompb.LabelMatcher{eq("__name__", "requests_total")}})
		if len(names) != bigSeries {
			t.Fatalf("got %d series, want %d", len(names), bigSeries)
		}
		if messages != bigSeries {
			t.Errorf("%d series in %d messages, want one per message", bigSeries, messages)
		}
		for i, name := range names {
			if w := fmt.Sprintf(`{__name__="requests_total", pod="p%03d"}`, i); name != w {
				t.Fatalf("series %d is %s, want %s (sorted by labels)", i, name, w)
			}
			if !slices.Equal(got[name], expected(i, 0, 1<<62)) {
				t.Fatalf("%s: wrong samples", name)
			}
		}
	})

	t.Run("series: as many series per message as the call asks for", func(t *testing.T) {
		q := &prompb.Query{Matchers: []*prompb.LabelMatcher{eq("__name__", "requests_total")}}
		wantNames, wantSamples, _ := seriesResult(t, conn, "team-a", q)
		for _, tc := range []struct {
			batch int64
			sizes []int
		}{
			{0, slices.Repeat([]int{1}, bigSeries)},
			{1, slices.Repeat([]int{1}, bigSeries)},
			{128, []int{128, 128, bigSeries - 256}},
			{1000, []int{bigSeries}},
		} {
			callCtx := storegateway.WithSeriesBatchSize(tenant.Inject(context.Background(), "team-a"), tc.batch)
			names, samples, sizes := seriesBatches(t, conn, callCtx, q)
			if !slices.Equal(sizes, tc.sizes) {
				t.Errorf("batch size %d: messages of %v series, want %v", tc.batch, sizes, tc.sizes)
			}
			if !slices.Equal(names, wantNames) {
				t.Errorf("batch size %d: series %v, want %v", tc.batch, names, wantNames)
			}
			for _, n := range names {
				if !slices.Equal(samples[n], wantSamples[n]) {
					t.Fatalf("batch size %d: %s holds other samples than with one series per message", tc.batch, n)
				}
			}
		}
	})

	t.Run("series: a batch size that is no count is refused", func(t *testing.T) {
		callCtx := metadata.AppendToOutgoingContext(tenant.Inject(context.Background(), "team-a"), storegateway.SeriesBatchSizeKey, "-3")
		stream, err := conn.Series(callCtx, &prompb.Query{Matchers: []*prompb.LabelMatcher{eq("__name__", "requests_total")}})
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `request metadata cortex-series-batch-size: "-3" is not a series count of 0 or more`) {
			t.Errorf("got %v, want InvalidArgument naming the metadata key and value", err)
		}
	})

	t.Run("label names and values", func(t *testing.T) {
		names, err := conn.LabelNames(ctx, &ingclient.LabelNamesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"__name__", "pod"}; !slices.Equal(names.Values, want) {
			t.Errorf("label names %v, want %v", names.Values, want)
		}
		values, err := conn.LabelValues(ctx, &ingclient.LabelValuesRequest{Name: "__name__"})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"cpu", "requests_total"}; !slices.Equal(values.Values, want) {
			t.Errorf("label values %v, want %v", values.Values, want)
		}
		pods, err := conn.LabelValues(ctx, &ingclient.LabelValuesRequest{Name: "pod", MatcherSets: ingclient.ToMatcherSets([]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "cpu")})})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"p0", "p1", "p2"}; !slices.Equal(pods.Values, want) {
			t.Errorf("pods of cpu %v, want %v", pods.Values, want)
		}
		if _, err := conn.LabelValues(ctx, &ingclient.LabelValuesRequest{}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("label values without a name: %v, want InvalidArgument", err)
		}
	})

	t.Run("another tenant sees only its own", func(t *testing.T) {
		names, _, _ := seriesResult(t, conn, "team-b", &prompb.Query{Matchers: []*prompb.LabelMatcher{eq("__name__", "cpu")}})
		if len(names) != 0 {
			t.Errorf("team-b sees team-a's series %v", names)
		}
		values, err := conn.LabelValues(tenant.Inject(context.Background(), "team-b"), &ingclient.LabelValuesRequest{Name: "__name__"})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"mem"}; !slices.Equal(values.Values, want) {
			t.Errorf("team-b's names %v, want %v", values.Values, want)
		}
		names, _, _ = seriesResult(t, conn, "team-c", &prompb.Query{})
		if len(names) != 0 {
			t.Errorf("a tenant without blocks sees %v", names)
		}
	})

	t.Run("a call without a tenant is refused naming the header", func(t *testing.T) {
		// Without the tenant client interceptors, which refuse to send a
		// call without a tenant.
		tlsClient, err := tlsconfig.NewClient(sgclient.TLSPrefix, tlsconfig.ClientConfig{
			CertPath: g.pki.Client(t, "anonymous").CertPath, KeyPath: g.pki.Dir + "/anonymous.key", CAPath: g.pki.CAPath,
		}, g.loader)
		if err != nil {
			t.Fatal(err)
		}
		cc, err := grpc.NewClient(g.addr, tlsClient.GRPCDialOption(), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{})))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		c := storegateway.NewStoreGatewayClient(cc)
		check := func(what string, err error) {
			t.Helper()
			if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "X-Scope-OrgID") {
				t.Errorf("%s without tenant: %v, want Unauthenticated naming X-Scope-OrgID", what, err)
			}
		}
		stream, err := c.Series(context.Background(), &prompb.Query{})
		if err == nil {
			_, err = stream.Recv()
		}
		check("Series", err)
		_, err = c.LabelNames(context.Background(), &ingclient.LabelNamesRequest{})
		check("LabelNames", err)
		_, err = c.LabelValues(context.Background(), &ingclient.LabelValuesRequest{Name: "pod"})
		check("LabelValues", err)
	})

	t.Run("a client certificate from a foreign CA is refused", func(t *testing.T) {
		foreign := testkit.NewPKI(t, "foreign-ca")
		c := g.dial(t, foreign.Client(t, "intruder"), g.pki.CAPath)
		_, err := c.LabelNames(ctx, &ingclient.LabelNamesRequest{})
		if err == nil {
			t.Fatal("a certificate from a foreign CA was accepted")
		}
		for _, want := range []string{"-" + sgclient.TLSPrefix, "does not trust", "-querier.store-gateway-client.tls-cert-path"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
	})

	t.Run("a server certificate from a CA the client does not trust is refused", func(t *testing.T) {
		foreign := testkit.NewPKI(t, "foreign-ca")
		c := g.dial(t, g.pki.Client(t, "querier-2"), foreign.CAPath)
		_, err := c.LabelNames(ctx, &ingclient.LabelNamesRequest{})
		if err == nil {
			t.Fatal("a server certificate from an untrusted CA was accepted")
		}
		if want := "-querier.store-gateway-client.tls-ca-path=" + foreign.CAPath; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	})
}

// TestStoreGatewayGRPCCancelled checks that a cancelled Series call ends
// with codes.Canceled rather than a server error.
func TestStoreGatewayGRPCCancelled(t *testing.T) {
	bkt := storegateway.NewTestBucket(t)
	storegateway.UploadBlock(t, bkt, "team-a", storegateway.WriteBlock(t, []storage.Series{
		storegateway.FloatSeries(labels.FromStrings("__name__", "cpu"), 0, step, 10, value(0)),
	}))
	store := storegateway.NewTestStore(t, bkt)
	if err := store.SyncBlocks(context.Background()); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, store)
	conn := g.dial(t, g.pki.Client(t, "querier"), g.pki.CAPath)
	// Wait for the connection so the cancellation is not a dial failure.
	testkit.EventuallyNil(t, 10*time.Second, "store-gateway health", func() error {
		_, err := conn.Check(context.Background(), &grpc_health_v1.HealthCheckRequest{})
		return err
	})
	ctx, cancel := context.WithCancel(tenant.Inject(context.Background(), "team-a"))
	cancel()
	stream, err := conn.Series(ctx, &prompb.Query{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Canceled {
		t.Errorf("cancelled Series: %v, want Canceled", err)
	}
}

// histSample is a native histogram sample for storage.NewListSeries.
type histSample struct {
	t int64
	h *histogram.Histogram
}

func (s histSample) T() int64                      { return s.t }
func (s histSample) ST() int64                     { return 0 }
func (s histSample) F() float64                    { return 0 }
func (s histSample) H() *histogram.Histogram       { return s.h }
func (s histSample) FH() *histogram.FloatHistogram { return nil }
func (s histSample) Type() chunkenc.ValueType      { return chunkenc.ValHistogram }
func (s histSample) Copy() chunks.Sample           { return histSample{s.t, s.h.Copy()} }

// TestStoreGatewayGRPCHistograms checks that native histogram chunks go
// out in their own encoding and decode to the written histograms.
func TestStoreGatewayGRPCHistograms(t *testing.T) {
	const n = 50
	var written []chunks.Sample
	for i := range n {
		written = append(written, histSample{int64(i) * step, tsdbutil.GenerateTestHistogram(int64(i))})
	}
	bkt := storegateway.NewTestBucket(t)
	storegateway.UploadBlock(t, bkt, "team-a", storegateway.WriteBlock(t, []storage.Series{
		storage.NewListSeries(labels.FromStrings("__name__", "latency"), written),
	}))
	store := storegateway.NewTestStore(t, bkt)
	if err := store.SyncBlocks(context.Background()); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, store)
	conn := g.dial(t, g.pki.Client(t, "querier"), g.pki.CAPath)
	stream, err := conn.Series(tenant.Inject(context.Background(), "team-a"), &prompb.Query{Matchers: []*prompb.LabelMatcher{eq("__name__", "latency")}})
	if err != nil {
		t.Fatal(err)
	}
	var got []histSample
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, cs := range msg.ChunkedSeries {
			for _, c := range cs.Chunks {
				if c.Type != prompb.Chunk_HISTOGRAM {
					t.Fatalf("chunk encoding %s, want HISTOGRAM", c.Type)
				}
				chk, err := chunkenc.FromData(chunkenc.EncHistogram, c.Data)
				if err != nil {
					t.Fatal(err)
				}
				it := chk.Iterator(nil)
				for it.Next() == chunkenc.ValHistogram {
					ts, h := it.AtHistogram(nil)
					got = append(got, histSample{ts, h})
				}
				if err := it.Err(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if len(got) != n {
		t.Fatalf("got %d histograms, want %d", len(got), n)
	}
	for i, s := range got {
		w := written[i].(histSample)
		if s.t != w.t || !s.h.Equals(w.h) {
			t.Errorf("histogram %d: %d %v, want %d %v", i, s.t, s.h, w.t, w.h)
		}
	}
}
