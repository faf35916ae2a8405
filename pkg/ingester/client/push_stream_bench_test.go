package client

import (
	"context"
	"flag"
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/cortex-tls/cortex/pkg/tenant"
	"github.com/cortex-tls/cortex/pkg/util/grpccodec"
	"github.com/cortex-tls/cortex/pkg/util/testkit"
)

// benchWriteRequest is a push of 1,000 series of 9 labels, one sample each.
func benchWriteRequest() *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for i := range 1000 {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: "bench_metric_total"}, {Name: "cluster", Value: "eu-west-1"}, {Name: "env", Value: "prod"},
				{Name: "instance", Value: fmt.Sprintf("10.0.%d.%d:9100", i/256, i%256)}, {Name: "job", Value: "node-exporter"},
				{Name: "namespace", Value: "monitoring"}, {Name: "pod", Value: fmt.Sprintf("node-exporter-%05d", i)},
				{Name: "series", Value: fmt.Sprint(i)}, {Name: "zone", Value: "eu-west-1a"},
			},
			Samples: []prompb.Sample{{Timestamp: 1, Value: float64(i)}},
		})
	}
	return req
}

// BenchmarkStreamPushEncoding is one StreamPushRequest of 1,000 series,
// encoded as the distributor sends it and decoded into the PushRequest the
// ingester stores from: by hand (the request marshalled straight into the
// message, decoded straight from it) and by the generated StreamPushRequest
// (the request marshalled, then copied into the message; copied out of it,
// then decoded).
func BenchmarkStreamPushEncoding(b *testing.B) {
	req := benchWriteRequest()
	const id, tenantID, signature = 12345, "team-a", "v1/0123456789abcdef"
	encoded, err := encodeStreamPush(id, tenantID, signature, req)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("marshal/hand", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(encoded)))
		for b.Loop() {
			if _, err := encodeStreamPush(id, tenantID, signature, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("marshal/generated", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(encoded)))
		for b.Loop() {
			r, err := req.Marshal()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := proto.Marshal(&StreamPushRequest{Id: id, TenantId: tenantID, Signature: signature, Request: r}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unmarshal/hand", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(encoded)))
		for b.Loop() {
			var m StreamPushMessage
			if err := m.Unmarshal(encoded); err != nil {
				b.Fatal(err)
			}
			m.Release()
		}
	})
	b.Run("unmarshal/generated", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(encoded)))
		for b.Loop() {
			var m StreamPushRequest
			if err := proto.Unmarshal(encoded, &m); err != nil {
				b.Fatal(err)
			}
			r := GetPushRequest()
			if err := r.Unmarshal(m.Request); err != nil {
				b.Fatal(err)
			}
			r.Release()
		}
	})
}

// discardIngester decodes pushes, by Push or PushStream, and drops them.
type discardIngester struct{ IngesterServer }

func (discardIngester) Push(context.Context, *PushRequest) (*PushResponse, error) {
	return &PushResponse{}, nil
}

func (discardIngester) PushStream(stream PushStreamServer) error {
	return ServePushStream(stream, func(context.Context, *StreamPushMessage) (*PushResponse, error) {
		return &PushResponse{}, nil
	})
}

// BenchmarkPushTransport is the link alone: pushes of 1,000 series of 9
// labels from a connection with the default -ingester.client.* settings
// (snappy-block compression) to a server that decodes and drops them, by
// Push calls and over a PushStream (-distributor.use-stream-push), one at
// a time and from 8 writers a core.
func BenchmarkPushTransport(b *testing.B) {
	req := benchWriteRequest()
	size := req.Size()
	lis := testkit.Listen(b)
	srv := grpc.NewServer(append([]grpc.ServerOption{grpc.ForceServerCodecV2(grpccodec.Codec{})}, tenant.ServerInterceptors()...)...)
	RegisterIngesterServer(srv, discardIngester{})
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(srv.Stop)

	for _, parallel := range []bool{false, true} {
		for _, stream := range []bool{false, true} {
			name := map[bool]string{false: "push", true: "stream"}[stream]
			if parallel {
				name += "-parallel"
			}
			b.Run(name, func(b *testing.B) {
				var cfg Config
				cfg.RegisterFlags(flag.NewFlagSet("bench", flag.PanicOnError))
				cfg.UseStreamPush = stream
				conn, err := Dial(lis.Addr().String(), cfg, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close()
				ctx := tenant.Inject(context.Background(), "bench")
				push := func() {
					if _, err := conn.Push(ctx, req); err != nil {
						b.Error(err)
					}
				}
				push() // connect, and open the stream
				b.ReportAllocs()
				b.SetBytes(int64(size))
				if parallel {
					b.SetParallelism(8)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							push()
						}
					})
				} else {
					for b.Loop() {
						push()
					}
				}
				b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "series/s")
			})
		}
	}
}
